# La console de passerelle, en français. Une clé par texte ; les mêmes clés
# dans en.ftl (un test vérifie qu'aucune ne manque).
app-name = passerelle
nav-dashboard = Tableau de bord
nav-claims = Demandes
nav-members = Adhérents
nav-periods = Bordereaux
nav-partners = Partenaires
nav-users = Utilisateurs
nav-password = Mot de passe
nav-sign-out = Se déconnecter
nav-language = English
signed-in-as = Session de { $name } ({ $role })
role-clerk = agent de mutuelle
role-manager = gestionnaire de mutuelle
role-scheme = agent du régime
role-operator = opérateur
switch-mutuelle = Mutuelle
switch = Changer

signin-title = Connexion
signin-login = Identifiant
signin-password = Mot de passe
signin-code = Code à 6 chiffres (application d'authentification)
signin-code-hint = Obligatoire pour les opérateurs.
signin-submit = Se connecter
signin-refused = Identifiant, mot de passe ou code incorrect.
signin-temporary-expired = Ce mot de passe vous a été donné il y a plus de { $hours } heures et ne permet plus de vous connecter : demandez-en un nouveau à un opérateur.
signin-wait = Trop d'essais. Réessayez dans { $seconds ->
    [one] { $seconds } seconde
   *[other] { $seconds } secondes
}.
signin-unavailable = Connexion impossible pour le moment. Réessayez dans un instant.
signin-expired = Votre session a pris fin (expirée, fermée par un opérateur ou après une déconnexion). Connectez-vous à nouveau.

dashboard-title = Tableau de bord
dashboard-open-period = Période en cours
dashboard-claims = Demandes
dashboard-due = Montant dû par la mutuelle
dashboard-pending = Demandes en attente
dashboard-per-scheme = Par régime
dashboard-nothing-open = Aucune demande dans les périodes en cours.
dashboard-partners = Partenaires
dashboard-federation = Total des mutuelles de la fédération

claims-title = Demandes
claims-filter = Filtrer
claims-state = État
claims-any = tous
claims-from = Soins du
claims-to = au
claims-mutuelle = Mutuelle
claims-none = Aucune demande ne correspond.
claims-none-operator = Aucune demande en attente dans cet état. Sans mutuelle indiquée, les opérateurs ne voient que les demandes en attente : indiquez une mutuelle pour voir toutes ses demandes.
claims-count = { $count ->
        [one] { $shown } demande
       *[other] { $shown } demandes
    }
claims-next = Page suivante
claims-total = Total
claims-total-standing = Total, hors demandes annulées
col-claim = Demande
col-scheme = Régime
col-mutuelle = Mutuelle
col-state = État
col-provider = Prestataire
col-invoice = Facture
col-date = Date des soins
col-billed = Facturé (B)
col-scheme-share = Régime (S)
col-mutuelle-share = Mutuelle (M)
col-patient-share = Patient (P)
col-line = Ligne
col-act = Acte
col-remainder = Reste (R)
export-amount-heading = { $column } en { $currency }
export-total-claims = Total des demandes
export-cancelled-since = Annulée après la clôture
export-end = Fin du bordereau : { $lines ->
        [one] { $lines } ligne
       *[other] { $lines } lignes
    } de { $claims ->
        [one] { $claims } demande
       *[other] { $claims } demandes
    } (la période compte { $stored ->
        [one] { $stored } demande
       *[other] { $stored } demandes
    }).
export-period-changed = La période { $number } a été clôturée pendant la lecture de son bordereau : ses lignes auraient mêlé le bordereau provisoire et le bordereau clôturé. Demandez à nouveau le bordereau de la période { $number }.
col-reasons = Motifs
col-member = Adhérent
col-beneficiary = Assuré
col-period = Période

state-received = reçue
state-pending_partner = en attente de la mutuelle
state-coordinated = coordonnée
state-rejected = rejetée
state-cancel_pending = annulation en cours
state-cancelled = annulée
state-open = ouverte
state-closed = clôturée
state-settled = réglée

claim-title = Demande { $id }
claim-rejected = Rejetée : { $reason }
claim-cancel-not-delivered = Annulation non transmise à la mutuelle : à faire à la main dans son propre système ({ $detail }).
claim-last-error = Dernière erreur rencontrée auprès de la mutuelle : { $error }
claim-awaiting-mutuelle = La mutuelle n'a pas encore répondu : en attendant, sa part (M) est à 0 et celle du patient (P) vaut tout le reste (R). Ce ne sont pas les montants définitifs : ils seront connus quand la mutuelle aura répondu.
claim-product = Produit appliqué
claim-updated = Dernière mise à jour
claim-duplicate-of = Même facture que la demande
claim-prior-authorization = Accord préalable
claim-quotes-authorization = Accord préalable : { $reference }
claim-cancel-reason = Motif de l'annulation
claim-indu = La demande { $claim } était dans la période { $period }, déjà clôturée : { $mutuelle } récupère les { $amount } qu'elle y avait comptés, { $payee_type ->
        [member] auprès de l'adhérent { $payee }
       *[other] auprès du prestataire { $payee }
    } (un indu), { $into ->
        [0] à déduire dans la période en cours, à sa clôture
       *[other] déduits dans la période { $into }
    }.
claim-nothing-recovered = La demande { $claim } reste dans la période { $period }, déjà clôturée : { $mutuelle } n'avait rien pris en charge pour elle, il n'y a rien à récupérer.

members-title = Adhérents
members-number = Numéro d'adhérent
members-search = Chercher
members-not-found = Aucun adhérent de ce numéro dans cette mutuelle.
member-covered-today = Couvert le { $date }
member-covered-yes = oui (produit { $product })
member-covered-yes-plain = oui
member-covered-no = non : { $why }
member-covered-own-system = la mutuelle en décide dans son propre système
member-household = Famille
member-dues = Cotisations payées jusqu'au
member-dues-never = jamais
member-products = Produits
member-product = Produit
member-start = Début
member-end = Fin
member-running = en cours

periods-none = Aucune période pour le moment : la première s'ouvre avec la première demande coordonnée.
periods-title = Bordereaux
periods-number = N°
periods-open = en cours
periods-claims = Demandes
periods-net = Net dû
periods-recoveries = Indus
periods-closed-at = Clôturée le
periods-settled-at = Réglée le
periods-reference = Référence du règlement
periods-view = Voir
statement-title = Bordereau { $scheme } – { $mutuelle }, période { $number }
statement-open-title = Bordereau provisoire { $scheme } – { $mutuelle }, période en cours
statement-payee = Bénéficiaire du paiement
statement-payee-provider = prestataire { $id }
statement-payee-member = adhérent { $id }
statement-payee-heading = Bénéficiaire du paiement : { $payee }
statement-export-xlsx = Exporter (classeur Excel)
statement-export-csv = Exporter (CSV pour Excel)
statement-xlsx-too-large = Ce bordereau compte plus de { $max } lignes, le maximum d'une feuille Excel : exportez-le en CSV.
statement-print = Imprimer
statement-signature = Visa du conseil d'administration
statement-more = Le bordereau continue sur la page suivante.
statement-page-subtotal = Sous-total de cette page
statement-payee-continued = (suite de la page précédente)
statement-payee-whole = — sur tout le bordereau : { $claims ->
        [one] { $claims } demande
       *[other] { $claims } demandes
    }, part de la mutuelle { $amount } (ses lignes sont sur plusieurs pages)
statement-paged-sign-export = Ce bordereau tient sur plusieurs pages : pour le viser, utilisez son export (classeur ou CSV), qui le contient en entier ; le total de chaque bénéficiaire du paiement est au-dessus de son tableau.

partners-title = Partenaires
partners-adapter = Adaptateur
partners-pending = En attente
partners-oldest = Plus ancienne
partners-circuit = Disjoncteur
partners-paused = En pause
partners-last-success = Dernier succès
partners-last-error = Dernière erreur
partners-pause = Mettre en pause
partners-resume = Reprendre
circuit-closed = fermé
circuit-open = ouvert
circuit-half_open = essai
yes = oui
no = non

password-title = Changer mon mot de passe
password-must-change = Ce mot de passe vous a été donné par un opérateur : choisissez le vôtre avant de continuer. Vous vous reconnecterez ensuite avec lui.
password-current = Mot de passe actuel
password-new = Nouveau mot de passe
password-rule = Au moins { $min } caractères. Une phrase de quelques mots se retient mieux qu'un mot compliqué.
password-confirm = Nouveau mot de passe, une seconde fois
password-submit = Changer le mot de passe
password-mismatch = Les deux saisies du nouveau mot de passe diffèrent : tapez-le à nouveau.
password-same = Le nouveau mot de passe est l'actuel : choisissez-en un autre.
password-current-wrong = Mot de passe actuel (ou code) incorrect.
password-current-wrong-no-code = Mot de passe actuel incorrect.
password-length = Trop court ou trop long : de { $min } à { $max } caractères.
password-weak = Trop simple : un mot de passe de quelques caractères répétés se devine. Choisissez une phrase de quelques mots.
password-changed-meanwhile = Votre mot de passe a été réinitialisé par un opérateur pendant ce changement : rien n'a été changé. Reconnectez-vous avec celui qu'il vous donne.
password-changed = Mot de passe changé. Connectez-vous avec le nouveau.
password-second-factor-title = Votre propre second facteur
password-second-factor = Mot de passe changé. Votre second facteur a été remplacé aussi : le secret donné avec votre compte ne permet plus de se connecter. Ajoutez dès maintenant ce secret à votre application d'authentification (il n'est affiché qu'ici, une seule fois), puis connectez-vous avec votre nouveau mot de passe et un code de ce secret.
password-second-factor-url = Adresse pour l'application (QR code)
password-sign-in-again = Se connecter
users-title = Utilisateurs
users-login = Identifiant
users-name = Nom
users-role = Rôle
users-scope = Périmètre
users-login-taken = L'identifiant « { $login } » est déjà celui d'un compte : choisissez-en un autre.
users-state = État
users-enabled = actif
users-disabled = désactivé
users-sessions = Sessions récentes
users-add = Nouveau compte
users-create = Créer
users-created = Compte créé
users-password = Mot de passe provisoire
users-totp = Secret du second facteur (application d'authentification)
users-shown-once = Notez-les maintenant : ils ne seront plus affichés. Le mot de passe permet de se connecter pendant { $hours } heures ; à sa première connexion, la personne choisira son propre mot de passe (un opérateur reçoit alors aussi un second facteur à lui, qui remplace celui-ci).
users-disable = Désactiver
users-enable = Réactiver
users-revoke = Fermer ses sessions
users-revoked = { $count ->
        [one] { $count } session fermée
       *[other] { $count } sessions fermées
    } pour { $login }.
users-address = Adresse
users-seen = Vu le

error-title = Erreur
error-forbidden = Vous n'avez pas accès à cette page.
error-not-allowed = Cette adresse est celle d'un bouton de la console, pas d'une page : revenez à la page précédente et utilisez le bouton.
error-not-found = Page ou demande introuvable.
error-invalid = Requête invalide : { $detail }
error-csrf = Le formulaire a expiré. Rechargez la page et recommencez.
error-unavailable = Service momentanément indisponible : { $detail }
error-store-unavailable = Service momentanément indisponible. Réessayez dans quelques minutes.
error-exports-busy = Trop d'exports de bordereaux sont en cours ; réessayez dans une minute.
error-internal = Erreur interne. L'opérateur a été prévenu par le journal.
error-back = Retour au tableau de bord
date-invalid = date invalide « { $value } » : écrivez-la jj/mm/aaaa (ou jj,mm,aaaa sur un téléphone), par exemple 31/12/2026
date-no-such-day = la date « { $value } » n'existe pas : vérifiez le jour et le mois (jj/mm/aaaa)
claims-dates-ignored = La liste ci-dessous ne tient pas compte des dates du filtre : corrigez-les puis filtrez de nouveau.

# La commande `passerelle users`.
cli-user-added = Compte { $login } créé ({ $role }).
cli-user-password = Mot de passe provisoire (affiché une seule fois ; il permet de se connecter pendant { $hours } heures) : { $password }
cli-user-totp = Second facteur : ajoutez ce secret à une application d'authentification : { $secret }
cli-user-totp-url = ou cette adresse (QR code) : { $url }
cli-user-reset = Mot de passe de { $login } remplacé ; ses sessions sont fermées. À sa prochaine connexion à la console, la personne choisira le sien.
cli-user-disabled = Compte { $login } désactivé ; ses sessions sont fermées.
cli-user-unknown = aucun compte ne s'appelle { $login } (passerelle users list les donne)
cli-db-in-use = { $db } : un broker en marche (ou une autre commande passerelle) tient cette base ; avec SQLite, un seul processus l'ouvre à la fois : relancez cette commande une fois le broker arrêté.
cli-db-missing = aucune base à { $path } : vérifiez le chemin dans la configuration (pour y créer une base neuve et vide, lancez `passerelle migrate`).
cli-db-empty = cette base ne contient pas encore le schéma de passerelle : lancez `passerelle migrate` (si vos données devaient s'y trouver, vérifiez le chemin ou l'adresse dans la configuration : c'est une base neuve et vide).
cli-db-too-old = le schéma de la base est en version { $found }, plus ancienne que celle de ce programme ({ $want }) : lancez `passerelle migrate` (après une sauvegarde, docs/operations.md).
cli-db-too-new = le schéma de la base est en version { $found }, plus récente que celle de ce programme ({ $want }) : une version plus récente de passerelle l'a migrée ; utilisez cette version ou une plus récente (pour revenir à celle-ci, restaurez la sauvegarde faite avant la mise à jour).
cli-store-failed = le stockage a échoué : { $detail }
cli-users-in-console = Broker en marche, un opérateur crée, désactive et réactive les comptes et ferme leurs sessions dans la console (page Utilisateurs).
cli-user-enabled = Compte { $login } réactivé.
cli-user-revoked = { $count ->
        [one] { $count } session de { $login } fermée.
       *[other] { $count } sessions de { $login } fermées.
    }
cli-user-code = Code actuel de { $login } : { $code }
cli-user-no-totp = Le compte { $login } n'a pas de second facteur.
cli-error-detail = erreur : { $detail }
cli-warning-detail = attention : { $detail }

# Les commandes du broker lui-même (`serve`, `migrate`, `conformance`,
# `dev`) : ce qu'elles écrivent autour des mots du broker, qui restent en anglais.
cli-signals = impossible d'installer la gestion des signaux : { $detail }
serve-listening = passerelle à l'écoute sur { $addr }
serve-metrics = métriques sur { $addr } (/metrics, /healthz, /readyz)
serve-console = console web : https://{ $addr }/
migrate-created = une base neuve et vide a été créée à { $path } (si vos données devaient s'y trouver, vérifiez le chemin dans la configuration).
migrate-done = schéma en version { $version }
store-slow-collation = cette base compare les clés selon la collation { $collation }, et non octet par octet ; chaque recherche dans un index en coûte davantage. Recréez la base de passerelle avec LOCALE 'C.UTF-8' (docs/operations.md, section 1, explique comment).
conformance-pass = réussi
conformance-fail = ÉCHEC
conformance-elsewhere = (partenaire injoignable ou lent, réponse invalide, part au-delà de R : vérifiés en intégration continue avec les partenaires simulés)
conformance-check-eligibility = éligibilité
conformance-check-golden-path = parcours nominal
conformance-check-duplicate = renvoi
conformance-check-cancel = annulation
conformance-check-unmapped-code = code non traduit
conformance-covered = couvert
conformance-not-covered = non couvert
conformance-golden = M = { $m } sur R = { $r }
conformance-duplicate-same = même clé, même réponse
conformance-duplicate-again = même clé, mêmes parts, mais une autre référence ({ $first } puis { $second }) : la mutuelle a décidé deux fois ; elle doit honorer la clé d'idempotence (If-None-Exist en FHIR)
conformance-duplicate-other = la même clé a donné une autre réponse
conformance-duplicate-first-failed = le premier appel a échoué
conformance-cancel-accepted = acceptée
conformance-cancel-by-hand = non offerte par cette mutuelle, comme son adaptateur le dit : passerelle annule dans ses comptes, et une personne annule chez la mutuelle ({ $detail })
conformance-unmapped-answered = UNMAPPED_CODE répondu sans interroger la mutuelle
conformance-unmapped-passed-through = pas de table des actes : les codes passent tels quels à la mutuelle (sans objet ; la demande d'essai a été annulée)
dev-listening = broker passerelle de développement à l'écoute sur { $addr }
dev-data-tls = données : { $path } (SQLite), TLS mutuel
dev-data-plaintext = données : { $path } (SQLite), EN CLAIR (sans identité du client)
dev-certificates = certificats : { $dir } (autorité de certification, serveur, un par régime, par mutuelle et pour l'opérateur « dev »)
dev-certificates-pick = les commandes client prennent le certificat de développement de la partie pour laquelle elles agissent
dev-metrics = métriques : http://{ $addr }/metrics (sondes /healthz, /readyz)
dev-console = console : https://{ $addr }/ (certificat signé par { $ca } ; le navigateur vous demandera de lui faire confiance)
dev-accounts = comptes de démonstration, mot de passe { $password } : agent (agent de mutuelle, MUT-SOLIDARITE), gestion et controle (gestionnaires, MUT-SOLIDARITE),
dev-accounts-more = federation (gestionnaire de MUT-SOLIDARITE et de MUT-ENSEIGNANTS), cnss (agent du régime),
dev-accounts-operator = ops (opérateur, avec le code à 6 chiffres d'une application d'authentification où l'on a saisi le secret TOTP { $secret })
dev-schemes = régimes : CNSS, INAM, CANAM (délégataires CMSS, INPS)
dev-mutuelles = mutuelles : MUT-SOLIDARITE (rules : règles appliquées par passerelle), MUT-ENSEIGNANTS (grpc),
dev-mutuelles-more = MUT-IMIS (fhir-r4, dialecte openIMIS), MUT-LEGACY (xml-http) : les trois dernières simulées
dev-members = assurés : CNSS TG-1001, TG-1002 (MUT-SOLIDARITE) et TG-3001 (MUT-IMIS) ;
dev-members-more = INAM TG-2001 (MUT-ENSEIGNANTS) et TG-4001 (MUT-LEGACY) ; CMSS ML-3001 (MUT-ENSEIGNANTS)
dev-try = essayez :
dev-stop = Ctrl-C pour arrêter.
dev-plaintext-warning = ATTENTION : gRPC servi EN CLAIR, sans chiffrement ni identité du client ; chaque requête est acceptée comme venant de la partie qu'elle nomme. Pour le développement sur cette machine seulement.

# Motifs d'une ligne non couverte en entier (codes de passerelle.common.v1.ReasonCode).
reason-UNSPECIFIED = motif non précisé
reason-SCHEME_REFUSED = refusé par le régime
reason-OUT_OF_BASKET_NOT_COVERED = acte hors panier, non couvert par le produit
reason-OVERRUN_NOT_COVERED = dépassement du tarif du régime non couvert
reason-PARTIAL_RATE = taux de prise en charge partiel
reason-CATEGORY_NOT_COVERED = catégorie de soins non couverte
reason-PER_ACT_LIMIT = plafond par acte atteint
reason-CEILING_REACHED = plafond atteint
reason-COUNT_LIMIT_REACHED = nombre d'actes maximal atteint
reason-WAITING_PERIOD = délai de carence en cours
reason-EXCLUDED_DIAGNOSIS = diagnostic exclu
reason-EXCLUDED_ACT = acte exclu
reason-DUES_UNPAID = cotisations non à jour
reason-NO_PRODUCT = aucun produit à cette date
reason-UNKNOWN_MEMBER = adhérent inconnu de la mutuelle
reason-FIXED_AMOUNT = montant forfaitaire
reason-PARTNER_RULE = règle de la mutuelle
reason-DUPLICATE_INVOICE = facture déjà présentée
reason-PARTNER_ANSWER_INVALID = réponse de la mutuelle invalide
reason-PARTNER_REJECTED = refusé par la mutuelle
reason-UNMAPPED_CODE = code inconnu de la mutuelle
reason-PRIOR_AUTHORIZATION_REQUIRED = accord préalable requis
reason-PRIOR_AUTHORIZATION_EXCEEDED = au-delà de l'accord préalable
reason-PRIOR_AUTHORIZATION_NOT_ACTIVE = accord préalable déjà facturé

# Les motifs du broker en détail (domain::DetailKey) : les valeurs *_amount
# sont des montants dans la devise de la demande, *_date des dates, *_bp des
# taux, déjà écrits dans cette langue ; $category est le nom de la catégorie.
detail-scheme-refused = refusé par le régime
detail-scheme-refused-because = refusé par le régime : { $reason }
detail-no-product = aucun produit en vigueur à la date des soins
detail-dues-paid-until = cotisations payées jusqu'au { $paid_until_date } seulement
detail-dues-none = aucune cotisation payée
detail-dues-not-paid = cotisations non à jour à la date des soins
detail-act-excluded = acte { $act } exclu par le produit { $product }
detail-category-not-covered = catégorie « { $category } » non couverte
detail-diagnosis-excluded = diagnostic { $diagnosis } exclu
detail-waiting-period = délai de carence : catégorie « { $category } » couverte à partir du { $from_date }
detail-waiting-period-all = délai de carence : couvert à partir du { $from_date }
detail-authorization-required = l'acte { $act } demande un accord préalable
detail-out-of-basket-not-covered = acte hors panier, non couvert par le produit
detail-out-of-basket-rate = acte hors panier couvert à { $rate_bp }
detail-fixed-amount = forfait de { $fixed_amount } par acte
detail-ticket-moderateur-rate = ticket modérateur couvert à { $rate_bp }
detail-overrun-not-covered = dépassement du tarif du régime non couvert
detail-overrun-rate = dépassement couvert à { $rate_bp } seulement, le reste non couvert
detail-per-act-limit = plafond de { $limit_amount } par acte
detail-category-count-limit = au plus { $limit } { $limit ->
        [one] acte
       *[other] actes
    } « { $category } » par an : { $left ->
        [0] il n'en restait aucun
       *[other] il en restait { $left }
    }
detail-act-count-limit = au plus { $limit } { $limit ->
        [one] acte
       *[other] actes
    } { $act } { $per ->
        [day] par jour
        [month] par mois
        [stay] par séjour
       *[other] par an
    } : { $left ->
        [0] il n'en restait aucun
       *[other] il en restait { $left }
    }
detail-authorized-billed-above = facturé { $billed_amount }, au-delà des { $authorized_amount } accordés et de la tolérance : les { $committed_amount } engagés sont payés
detail-authorized-paid-up-to = payé jusqu'aux { $committed_amount } engagés, tolérance comprise
detail-authorized-committed = les { $committed_amount } engagés par l'accord préalable sont payés
detail-ceiling-reached = plafond { $scope ->
        [beneficiary-year] annuel par bénéficiaire
        [household-year] annuel par famille
        [category-year] annuel de la catégorie
        [stay] du séjour
       *[other] { $scope }
    } ({ $period }) : il restait { $left_amount } sur { $limit_amount }
detail-category-ceiling-reached = plafond annuel « { $category } » ({ $period }) : il restait { $left_amount } sur { $limit_amount }
detail-claim-stay-ceiling-reached = plafond par séjour (une demande sans séjour nommé compte pour un séjour) : il restait { $left_amount } sur { $limit_amount }
detail-unmapped-code = { $what ->
        [member] adhérent
        [act-code] code d'acte
        [care-category] catégorie de soins
        [facility] établissement
        [diagnosis] diagnostic
       *[other] code
    } « { $code } » sans correspondance chez cette mutuelle
detail-not-a-member = pas adhérent de cette mutuelle
detail-no-mutuelle = aucune mutuelle connue de passerelle ne couvre ce bénéficiaire
detail-card-mismatch = le numéro d'adhérent { $member_number } chez { $mutuelle } n'est pas celui de ce bénéficiaire : vérifiez la carte
detail-partner-no-cover = la mutuelle n'indique aucune couverture en vigueur
detail-partner-capped-at-remainder = la mutuelle a valorisé l'acte à son propre tarif ; sa part est limitée au reste après le régime
detail-partner-line-rejected = la mutuelle a rejeté cette ligne, sans en dire la raison
detail-duplicate-invoice = la facture { $invoice } du prestataire { $provider } figure déjà sur la demande { $claim }
detail-authorization-billed-elsewhere = l'accord préalable { $reference } a déjà été facturé par la demande { $claim }

# Le fichier des adhérents.
roster-title = Fichier des adhérents
roster-link = Importer le fichier des adhérents (CSV ou Excel)
roster-help = Déposez le fichier complet des adhérents de la mutuelle (CSV séparé par « ; » ou « , », en UTF-8 ou Windows, ou classeur Excel .xlsx ; dates jj/mm/aaaa ; colonnes scheme_id, beneficiary_id, member_number, product_id, product_start, et au choix household_id, paid_until, product_end, une ligne par produit d'un adhérent). La vérification montre ce qui changerait, sans rien modifier ; les adhérents absents du fichier seront sortis.
roster-file = Fichier (.csv ou .xlsx)
roster-check = Vérifier
roster-apply = Appliquer { $file }
roster-fix-first = Corrigez les lignes en erreur dans le fichier puis déposez-le à nouveau.
roster-expired = Le fichier vérifié n'est plus en attente : il a déjà été appliqué (la page rechargée), ou un autre a été vérifié depuis, ou la mutuelle a changé. Rien n'a été appliqué de nouveau ; déposez-le à nouveau s'il le faut.
upload-too-large = Ce fichier dépasse { $mib } Mio, la taille la plus grande que la console reçoit. Enregistrez-le en .xlsx, plus compact qu'un .csv (un fichier des adhérents doit les contenir tous : ne le scindez pas).
upload-busy = D'autres fichiers sont en cours de lecture : envoyez le vôtre à nouveau dans un instant.
upload-cut = Le fichier n'est pas arrivé en entier (connexion coupée ?) : envoyez-le à nouveau.
roster-unreadable = Fichier illisible : { $detail }
roster-old-excel = Fichier illisible : c'est un classeur de l'ancien format Excel (.xls). Dans Excel, « Enregistrer sous » au format « Classeur Excel (.xlsx) » ou « CSV (séparateur : point-virgule) », puis déposez ce fichier.
roster-not-xlsx = Fichier illisible : ce classeur Excel est abîmé ou incomplet (transfert interrompu ?). Enregistrez-le de nouveau depuis Excel, ou au format CSV, puis déposez-le.
roster-other-workbook = Fichier illisible : ce n'est pas un classeur Excel (.xlsx) ; un classeur LibreOffice (.ods) ou d'un autre tableur s'enregistre d'abord au format .xlsx ou CSV (séparateur point-virgule).
roster-no-members = Ce fichier ne contient aucun adhérent : rien à vérifier.
roster-changes-more = … et { $count ->
        [one] { $count_shown } autre changement, appliqué avec les autres
       *[other] { $count_shown } autres changements, appliqués avec les autres
    }.
roster-bad-more = … et { $count ->
        [one] { $count_shown } autre ligne à corriger
       *[other] { $count_shown } autres lignes à corriger
    }.
roster-no-column = La première ligne n'a pas de colonne « { $column } ».
roster-unknown-column = Colonne inconnue « { $column } » dans la première ligne. Colonnes possibles : scheme_id, beneficiary_id, member_number, household_id, paid_until, product_id, product_start, product_end (retirez les autres).
roster-bad-rows = Lignes en erreur
roster-line = Ligne
roster-column = Colonne
roster-problem = Problème
roster-empty = ne doit pas être vide
roster-not-a-date = « { $value } » n'est pas une date (jj/mm/aaaa)
roster-end-before-start = est avant le début du produit
roster-differs = diffère de la ligne { $line } du même adhérent (« { $value } »)
roster-excel-number = « { $value } » est un nombre qu'Excel affiche en notation scientifique, dont les chiffres sont perdus : mettez la colonne au format Texte et saisissez de nouveau le numéro
roster-overlaps-line = chevauche la période de produit de la ligne { $line } du même adhérent : un adhérent n'a qu'un produit à la fois, l'une doit finir avant que l'autre commence
roster-would = Si vous appliquez : { $added ->
        [one] { $added_shown } ajouté
       *[other] { $added_shown } ajoutés
    }, { $updated ->
        [one] { $updated_shown } modifié
       *[other] { $updated_shown } modifiés
    }, { $ended ->
        [one] { $ended_shown } sorti
       *[other] { $ended_shown } sortis
    }, { $unchanged ->
        [one] { $unchanged_shown } inchangé
       *[other] { $unchanged_shown } inchangés
    }.
roster-would-once-fixed = Les adhérents sans ligne en erreur donneraient : { $added ->
        [one] { $added_shown } ajouté
       *[other] { $added_shown } ajoutés
    }, { $updated ->
        [one] { $updated_shown } modifié
       *[other] { $updated_shown } modifiés
    }, { $ended ->
        [one] { $ended_shown } sorti
       *[other] { $ended_shown } sortis
    }, { $unchanged ->
        [one] { $unchanged_shown } inchangé
       *[other] { $unchanged_shown } inchangés
    } (les adhérents des lignes en erreur restent tels quels tant qu'elles ne sont pas corrigées).
roster-changed-since = Les adhérents de la mutuelle ont changé depuis la vérification : rien n'a été appliqué. Voici ce que ferait maintenant ce fichier ; appliquez de nouveau pour confirmer.
roster-confirm-first = Rien n'a été appliqué : cochez la case qui confirme la sortie des adhérents absents du fichier, puis appliquez de nouveau.
roster-more-refused = D'autres lignes sont refusées au-delà de celles-ci : corrigez d'abord celles-ci, puis vérifiez de nouveau.
roster-ending = Attention : { $ended ->
        [one] { $ended_shown } adhérent absent de ce fichier sera sorti (sa couverture prend fin)
       *[other] { $ended_shown } adhérents absents de ce fichier seront sortis (leur couverture prend fin)
    }. Si ce fichier ne contient qu'une partie des adhérents, ne l'appliquez pas.
roster-confirm-ended = Je confirme : { $ended ->
        [one] { $ended_shown } adhérent sort
       *[other] { $ended_shown } adhérents sortent
    }, soit la moitié ou plus des adhérents de la mutuelle.
roster-unknown-scheme = régime « { $value } » inconnu de passerelle
roster-unknown-product = produit « { $value } » non déclaré par la mutuelle (voir la page Produits)
roster-number-case = ne diffère du n° d'adhérent « { $value } » que par les majuscules : écrivez-le comme lui (un autre numéro ferait repartir de zéro les plafonds de l'adhérent)
cli-more-unnamed = { $count ->
        [one] et 1 autre ligne que passerelle a comptée sans la nommer : vérifiez à nouveau le fichier une fois celles-ci corrigées
       *[other] et { $count } autres lignes que passerelle a comptées sans les nommer : vérifiez à nouveau le fichier une fois celles-ci corrigées
    }
roster-crowded-beneficiary = { $count } adhérents de la mutuelle auraient ce n° d'assuré, plus de { $max } : il désigne une seule personne (écrivez le n° du régime, pas une valeur d'attente comme 0 ou NEANT)
roster-covered-elsewhere-to = une autre mutuelle couvre aussi ce bénéficiaire du { $from } au { $to } : l'une des deux adhésions doit finir avant que l'autre commence
roster-covered-elsewhere = une autre mutuelle couvre aussi ce bénéficiaire à partir du { $from }, sans date de fin : l'une des deux adhésions doit finir avant que l'autre commence
roster-refused = refusé par passerelle : { $detail }
roster-applied = Appliqué : { $added ->
        [one] { $added_shown } ajouté
       *[other] { $added_shown } ajoutés
    }, { $updated ->
        [one] { $updated_shown } modifié
       *[other] { $updated_shown } modifiés
    }, { $ended ->
        [one] { $ended_shown } sorti
       *[other] { $ended_shown } sortis
    }, { $unchanged ->
        [one] { $unchanged_shown } inchangé
       *[other] { $unchanged_shown } inchangés
    }.
roster-changes = Changements
roster-change = Changement
roster-change-added = ajouté
roster-change-updated = modifié
roster-change-end_dated = sorti
roster-col-scheme_id = régime (scheme_id)
roster-col-beneficiary_id = n° d'assuré (beneficiary_id)
roster-col-member_number = n° d'adhérent (member_number)
roster-col-household_id = famille (household_id)
roster-col-paid_until = cotisations payées jusqu'au (paid_until)
roster-col-product_id = produit (product_id)
roster-col-product_start = début du produit (product_start)
roster-col-product_end = fin du produit (product_end)

# Le journal d'une demande (opérateurs).
audit-title = Journal d'audit
audit-when = Quand
audit-direction = Sens
audit-party = Partie
audit-method = Appel
audit-outcome = Résultat
audit-in = reçu
audit-out = envoyé
audit-omitted = lignes non affichées entre les { $head } plus anciennes et les { $tail } plus récentes : { $omitted }
claim-retry = Relancer maintenant
chart-pending = Demandes en attente par mutuelle
chart-oldest = (la plus ancienne depuis { $minutes } min)
chart-due = Montant dû par régime, période en cours
statement-recovery = indu (période { $period })
statement-cancelled-since = annulée après la clôture
statement-from-period = Période d'origine
claims-dates-order = La date de début est après la date de fin : corrigez le filtre.
claims-operator-mutuelle = Pour cet état, indiquez une mutuelle (les opérateurs voient les demandes en attente de toutes les mutuelles, les autres par mutuelle).
chart-per-day = Demandes coordonnées et part de la mutuelle par jour de soins, 14 derniers jours
chart-partial = { " " }(les { $count } premières seulement)
done-paused = Partenaire mis en pause : ses demandes attendent, aucun appel ne part.
done-resumed = Partenaire repris : ses demandes en attente partent.
done-revoked = Sessions fermées.
done-disabled = Compte désactivé ; ses sessions sont fermées.
done-enabled = Compte réactivé.
done-retried = Relance faite : voir l'état et le journal ci-dessous.
done-proposed = Proposition enregistrée : un autre gestionnaire de la mutuelle doit l'approuver avant qu'elle s'applique.
done-unchanged = Rien à approuver : c'est déjà ce qui est enregistré.
done-approved = Proposition approuvée et appliquée.
done-rejected = Proposition rejetée.
done-withdrawn = Proposition retirée.
done-already-decided = Cette proposition était déjà décidée (par vous, si vous avez appuyé deux fois) : son issue est dans l'historique ci-dessous.

nav-products = Produits
nav-approvals = Approbations
date-hint = jj/mm/aaaa
skip-to-content = Aller au contenu
category-consultation = Consultation
category-pharmacy = Pharmacie
category-lab = Analyses de laboratoire
category-imaging = Imagerie
category-hospitalisation = Hospitalisation
category-maternity = Maternité
category-dental = Dentaire
category-optical = Optique
category-other = Autres soins

products-title = Produits
products-version-waiting = Version { $version } de { $product } (à partir du { $from }) proposée par { $who } le { $when } : elle attend l'approbation d'un autre gestionnaire (Approbations).
products-none = Aucun produit enregistré pour cette mutuelle.
products-new-version = Proposer une nouvelle version de
products-new-heading = Nouvelle version de { $id } ({ $name })
products-other-mutuelle = Ce formulaire a été ouvert pour { $mutuelle }, et vous travaillez maintenant sur une autre mutuelle : rien n'a été proposé. Revenez à { $mutuelle } (en haut de la page) pour proposer cette version.
products-starts-too-early = La nouvelle version doit commencer après la version { $version }, qui s'applique depuis le { $from } : choisissez une date de début plus tardive.
products-starts-in-the-past = Une nouvelle version commence après aujourd'hui ({ $today }) : les soins déjà donnés restent réglés selon la version { $version }. Choisissez demain ou une date plus tardive.
products-version-pending = Une version { $version } de ce produit est déjà proposée et attend son approbation : faites-la approuver ou rejeter (page Approbations) avant d'en proposer une autre.
products-changed-meanwhile = Le produit a changé depuis l'ouverture de ce formulaire (une autre version publiée, ou une autre mutuelle choisie dans un autre onglet) : rien n'a été proposé. Voici la version { $version } de { $id } telle qu'elle est ; saisissez de nouveau vos changements.
products-new-intro = La version { $version } de { $id } reprend la version { $from } ; changez ce qui doit changer. Elle s'appliquera aux soins à partir de la date choisie, une fois approuvée par une autre personne gestionnaire.
products-propose = Proposer cette version
products-bad-fields = Ces champs sont mal remplis : { $fields }. Les taux s'écrivent en pourcentage (80 ou 80,5), les montants en chiffres (50 000), la date en jj/mm/aaaa.
product-heading = { $id } version { $version } « { $name } » : du { $from } { $to }
product-to = au { $date }
product-open-ended = sans date de fin
product-used = déjà utilisée par des demandes (ne change plus)
product-category = Catégorie
product-coverage = Prise en charge
product-limits = Plafonds
product-waiting = Délai de carence
product-rate = { $rate } du ticket modérateur
product-fixed = { $amount } par acte (au plus le ticket modérateur)
product-overrun = dépassement couvert à { $rate }
product-out-of-basket = hors panier couvert à { $rate }
product-per-act = { $amount } par acte
product-per-year = { $amount } par an et par bénéficiaire
product-acts-per-year = { $count } actes par an
product-no-limit = aucun plafond propre
product-no-waiting = aucun
product-days = { $days } jours
product-overall = Pour tout le produit
product-beneficiary-year = { $amount } par an et par bénéficiaire
product-household-year = { $amount } par an et par famille
product-stay = { $amount } par séjour hospitalier
product-name = Nom du produit
product-valid-from = Applicable aux soins à partir du
product-beneficiary-limit = Plafond annuel par bénéficiaire (vide : aucun)
product-rate-field = Taux du ticket modérateur pris en charge
product-year-limit-field = Plafond annuel (vide : aucun)
product-year-count-field = Nombre d'actes par an (vide : sans limite)

periods-propose-close = Proposer la clôture de la période en cours ({ $pair })
periods-close-waiting = Clôture de { $pair } proposée par { $who } le { $when } : elle attend l'approbation d'un autre gestionnaire (Approbations).
periods-propose-settle = Proposer le règlement de la période { $number } ({ $pair })

approvals-title = Approbations
approvals-heading = Approbations · { $mutuelle }
approvals-none = Aucune proposition n'attend d'approbation.
approvals-none-at-all = Aucune proposition enregistrée.
approvals-history = Propositions décidées
approvals-no-history = Aucune proposition décidée pour l'instant.
approvals-number = Proposition n°
approvals-change = Changement
approvals-proposed-by = Proposée par
approvals-decided-by = Décidée par
approvals-decided-at = Le
approvals-outcome = Résultat
approvals-proposed = Proposée par { $who } le { $when } · empreinte { $hash }…
approvals-approve = Approuver
approvals-reject = Rejeter
approvals-withdraw = Retirer ma proposition
approvals-reason = Motif du rejet
approvals-yours = Vous avez fait cette proposition : un autre gestionnaire de la mutuelle doit l'approuver.
approvals-managers-only = Seule une personne gestionnaire de la mutuelle peut l'approuver.
approvals-not-yours = Vous ne pouvez pas décider de cette proposition : seule une personne gestionnaire de sa mutuelle, autre que son auteur, peut l'approuver ; son auteur peut la retirer.
approvals-unreadable = (contenu illisible)
approvals-kind-close = Clôture de période
approvals-kind-settle = Règlement de période
approvals-kind-products = Publication de produit
approvals-kind-unknown = inconnu
approvals-state-pending = en attente
approvals-state-approved = approuvée, en cours d'application
approvals-state-applied = approuvée et appliquée
approvals-state-failed = approuvée, non appliquée : voir le résultat
approvals-state-rejected = rejetée
approvals-state-expired = expirée (non décidée en 7 jours)
approvals-close = Clôturer la période en cours de { $pair } : { $count ->
        [one] { $claims } demande
       *[other] { $claims } demandes
    }, facturé { $billed }, part mutuelle { $mutuelle }, indus { $recoveries }, net dû { $net }.
approvals-settle = Enregistrer le règlement de la période { $number } de { $pair }, référence { $reference }, net dû { $net }.
approvals-product = { $id } version { $version } « { $name } », applicable à partir du { $from }

nav-certificates = Certificats
certs-title = Certificats et listes de révocation
certs-kind = Type
certs-file = Fichier
certs-until = Fin de validité
certs-days = Jours restants
certs-ok = valide
certs-soon = à renouveler bientôt
certs-expired = expiré
certs-none = Aucun certificat lu (écoute sans TLS).
certs-summary = { $soon ->
    [0] Rien à renouveler : aucun certificat ne finit dans les 30 jours, aucune liste de révocation dans les 7 jours.
    [one] Un certificat (moins de 30 jours) ou une liste de révocation (moins de 7 jours) est à renouveler.
   *[other] { $soon } certificats (moins de 30 jours) ou listes de révocation (moins de 7 jours) sont à renouveler.
}
certs-kind-server = certificat du broker
certs-kind-client_ca = autorité des clients
certs-kind-crl_next_update = liste de révocation (prochaine mise à jour)
certs-kind-partner_certificate = certificat d'un partenaire
certs-kind-partner_crl_next_update = liste de révocation d'un partenaire
claim-not-found-other-mutuelle = Aucune demande de { $mutuelle }, la mutuelle sur laquelle vous travaillez, ne porte ce numéro. Si elle est d'une autre mutuelle de votre périmètre, choisissez-la dans l'en-tête puis rouvrez la demande.
member-ceilings = Plafonds au { $date } ({ $product }) : utilisés et restants
member-no-product = Aucun produit en vigueur le { $date } : pas de plafond.
ceiling-name = Plafond
ceiling-period = Période
ceiling-limit = Limite
ceiling-used = Utilisé
ceiling-act = nombre d'actes par période
ceiling-next-allowed = prochain acte couvert le { $date }
product-act-limit-day = au plus { $count ->
        [one] { $count } acte
       *[other] { $count } actes
    } { $act } par jour
product-act-limit-month = au plus { $count ->
        [one] { $count } acte
       *[other] { $count } actes
    } { $act } par mois
product-act-limit-year = au plus { $count ->
        [one] { $count } acte
       *[other] { $count } actes
    } { $act } par an
product-act-limit-stay = au plus { $count ->
        [one] { $count } acte
       *[other] { $count } actes
    } { $act } par séjour ou grossesse suivie
product-prior-authorization = accord préalable requis pour : { $what } (valable { $days } jours, tolérance { $rate })
ceiling-held = Réservé (accords préalables)
ceiling-left = Reste
ceiling-beneficiary-year = par an et par bénéficiaire
ceiling-household-year = par an et par famille
ceiling-category-year = par an
ceiling-stay = par séjour
ceiling-count = nombre d'actes par an
chart-per-day-scheme = Demandes coordonnées du régime et part des mutuelles par jour de soins, 14 derniers jours

# The command line (`passerelle` client commands): words of its tables
# and messages, keyed by the English text (`cli::output::Lang::t`).
cli-proposal = proposition
cli-change = changement
cli-proposed-by = proposée par
cli-decided-by = décidée par
cli-decided-at-utc = décidée le (UTC)
cli-proposed-at = proposée le
cli-hash = empreinte
cli-claim = demande
cli-state = état
cli-scheme = régime
cli-mutuelle = mutuelle
cli-member = adhérent
cli-household = famille
cli-provider = prestataire
cli-invoice = facture
cli-date-of-care = date des soins
cli-line = ligne
cli-act = acte
cli-billed-b = facturé (B)
cli-scheme-s = régime (S)
cli-mutuelle-m = mutuelle (M)
cli-patient-p = patient (P)
cli-remainder-r = reste (R)
cli-reasons = motifs
cli-in-force-amount-held = en vigueur (montant réservé)
cli-billed-by-claim = facturé par la demande
cli-expired = expiré
cli-prior-authorization = accord préalable
cli-valid-until = valable jusqu'au
cli-tolerance = tolérance
cli-next-act-covered-on = prochain acte couvert le
cli-opening-balances-set = soldes d'ouverture fixés
cli-dry-run-nothing-written = essai : rien n'est écrit
cli-held = réservé
cli-cancelled-by-the-scheme = annulé par le régime
cli-expired-not-billed = expiré, non facturé
cli-total = total
cli-amounts-excluding-cancelled-claims = montants hors demandes annulées
cli-covered = couvert
cli-not-covered = non couvert
cli-yes = oui
cli-no = non
cli-product = produit
cli-dues-paid-until = cotisations payées jusqu'au
cli-ceiling = plafond
cli-period = période
cli-limit = limite
cli-used = consommé
cli-remaining = reste
cli-patient-bears = à la charge du patient
cli-applies-to = s'applique à
cli-value = valeur
cli-co-payment = participation forfaitaire
cli-co-payment-rate = taux de participation
cli-co-payment-maximum = plafond de participation
cli-deductible = franchise
cli-excluded = exclu
cli-already-borne = déjà à sa charge
cli-this-claim-had-already-been-cancelled-its-reason-stays-the-first-cancel-s = Cette demande avait déjà reçu une annulation : son motif reste celui de la première.
cli-family = famille
cli-out-of-network = hors réseau
cli-annual = annuel
cli-day = par jour
cli-lifetime = à vie
cli-claims = demandes
cli-recoveries = indus
cli-net-due = net dû
cli-payee = bénéficiaire du paiement
cli-closed = clôturée
cli-settled = réglée
cli-open = ouverte
cli-reference = référence
cli-received = reçue
cli-pending-at-mutuelle = en attente de la mutuelle
cli-coordinated = coordonnée
cli-rejected = rejetée
cli-cancel-pending = annulation en cours
cli-cancelled = annulée
cli-unknown = inconnu
cli-adapter = adaptateur
cli-last-success = dernier succès
cli-last-error = dernière erreur
cli-pending = en attente
cli-when = quand
cli-direction = sens
cli-party = partie
cli-method = méthode
cli-outcome = résultat
cli-added = ajouté
cli-updated = modifié
cli-end-dated = sorti
cli-unchanged = inchangé
cli-skipped-rows = lignes ignorées (adhérents laissés tels quels)
cli-dry-run-nothing-was-written = simulation : rien n'a été écrit
cli-from-period = de la période
cli-amount = montant
cli-version = version
cli-valid-from = valable du
cli-valid-to = au
cli-in-use = utilisé
cli-result = résultat
cli-next-page = page suivante
cli-never = jamais
cli-beneficiary = assuré
cli-from = du
cli-to = au
cli-no-coverage-conflict = aucun conflit de couverture
cli-nothing-to-change = rien à changer
cli-calls = appels
cli-paused = en pause
cli-circuit-open-until = circuit ouvert jusqu'au
cli-circuit-half-open-trial-call = circuit semi-ouvert (appel d'essai)
cli-going = en service
cli-oldest-pending = plus ancienne en attente
cli-error = erreur :

# What a refusal of the broker means (`Lang::refusal`): by its ErrorInfo
# reason, else by its gRPC code; the broker's own words follow as a detail.
error-refusal = { $said } (le broker dit : « { $detail } »)
error-reason-MODIFIED_REQUEST = Ce numéro de demande a déjà été reçu avec un contenu différent : pour obtenir la réponse déjà donnée, renvoyez la demande exactement comme la première fois ; pour la corriger, annulez-la puis envoyez la demande corrigée sous un nouveau numéro ; une autre demande doit avoir son propre numéro.
error-reason-UNKNOWN_MEMBER = Cet assuré n'est adhérent d'aucune mutuelle connue à cette date.
error-card-mismatch = Le numéro d'adhérent de la carte n'est pas celui de cet assuré dans la mutuelle nommée : vérifiez la carte (ou envoyez la demande sans numéro d'adhérent).
error-card-not-member = Cet assuré n'est pas adhérent, à cette date, de la mutuelle nommée sur la carte : vérifiez la carte.
error-reason-NOT_FOUND = Introuvable.
error-reason-PARTNER_PAUSED = Cette mutuelle a été mise en pause par un opérateur : rien ne lui est envoyé jusqu'à sa reprise.
error-reason-CONTENT_ENCODING_UNSUPPORTED = Corps de requête compressé : cette porte ne lit que des corps non compressés (identity) ; renvoyez-le sans Content-Encoding.
error-reason-PARTNER_UNAVAILABLE = La mutuelle ne répond pas pour l'instant : reposez la question dans quelques minutes.
error-reason-PARTNER_ANSWER_INVALID = La réponse de la mutuelle est invalide : elle n'a pas été retenue.
error-hold-released = Ce que la mutuelle avait réservé pour cet accord a été libéré.
error-hold-not-released = Ce que la mutuelle avait réservé pour cet accord n'a pas pu être libéré : renvoyez la même demande pour le libérer.
error-hold-refused = La mutuelle a refusé de libérer ce qu'elle avait réservé pour cet accord : cela doit se faire dans son propre système.
partner-error-deadline = délai de { $ms } ms dépassé
partner-error-paused = mutuelle { $mutuelle } mise en pause par un opérateur : rien ne lui est envoyé jusqu'à sa reprise
partner-error-unavailable = mutuelle indisponible : { $detail }
partner-error-pending = pas encore décidée par la mutuelle (redemandée plus tard) : { $detail }
partner-error-malformed = réponse invalide : { $detail }
partner-error-malformed-hidden = réponse invalide : le détail est dans le motif de la demande (pour un accord préalable, dans l'erreur rendue au régime)
partner-error-rejected = refus de la mutuelle : { $detail }
partner-error-unsupported = non pris en charge par cette mutuelle : { $detail }
partner-error-openimis-no-cancel = openIMIS ne permet aucune annulation par FHIR : rejetez la demande { $claim } dans openIMIS, à la main
partner-error-probe = sonde : { $error }
error-reason-PERMISSION_DENIED = Cette identité n'a pas le droit de faire cela (refus inscrit au journal).
error-reason-OVERLOADED = Trop d'appels en même temps : réessayez dans un instant.
error-reason-COVERAGE_CONFLICT = Deux mutuelles déclarent cet assuré aux mêmes dates : un opérateur doit trancher.
error-reason-COVERAGE_OVERLAP = Ces adhésions chevauchent celles d'une autre mutuelle pour le même assuré : la première doit finir avant que la suivante commence.
error-reason-REFUSED = Opération refusée en l'état.
error-reason-PERIOD_NOT_SETTLED = Cette période n'est pas encore réglée : son avis de paiement viendra avec l'enregistrement de son règlement.
error-reason-PERIOD_CHANGED = La période ouverte a changé depuis que sa clôture a été proposée (une demande annulée entre-temps, ou des montants modifiés) : rien n'a été clôturé ; proposez de nouveau la clôture.
error-reason-PROPOSAL_DECIDED = Cette proposition est déjà décidée (appliquée, non appliquée, rejetée ou retirée) : la liste des approbations dit ce qu'elle est devenue.
error-reason-PROPOSAL_EXPIRED = Cette proposition a expiré : elle n'a pas été décidée dans les 7 jours ; proposez-la de nouveau.
error-reason-TOO_MANY_LINES = Trop de lignes pour une seule réponse : elles se lisent page par page, ou un prestataire ou adhérent payé à la fois.
error-reason-PRODUCT_IN_USE = Cette version du produit sert déjà à des demandes : elle ne change plus ; déclarez une nouvelle version.
error-reason-STORE_CORRUPT = Une donnée enregistrée est illisible : prévenez l'opérateur.
error-reason-STORE_UNAVAILABLE = La base de données est indisponible : réessayez plus tard.
error-reason-APPROVAL_REQUIRED = Une autre personne de la mutuelle doit approuver ce changement.
error-reason-PRIOR_AUTHORIZATION_NOT_ACTIVE = Cet accord préalable n'est plus en vigueur (facturé, annulé ou expiré) : demandez-en un nouveau, ou facturez sans lui.
error-reason-PRIOR_AUTHORIZATION_CONSUMED = Cet accord préalable a déjà été facturé : annulez d'abord la demande de remboursement.
error-reason-PRIOR_AUTHORIZATION_UNSUPPORTED = Le système de cette mutuelle ne donne pas d'accord préalable.
error-reason-PRIOR_AUTHORIZATION_LIMIT = Cet assuré a trop d'accords préalables en vigueur : facturez-en ou annulez-en d'abord.
error-reason-ROSTER_IMPORT_RUNNING = Un import ou une vérification du fichier des adhérents de cette mutuelle est déjà en cours : renvoyez celui-ci une fois qu'il sera terminé.
error-reason-PRIOR_AUTHORIZATION_REFUSED = La mutuelle a refusé l'accord préalable.
error-reason-DEADLINE_EXCEEDED = Délai dépassé : le résultat n'est pas connu ; renvoyez la même demande, elle ne sera pas payée deux fois.
error-code-InvalidArgument = Requête invalide.
error-code-FailedPrecondition = Opération refusée en l'état.
error-code-OutOfRange = Hors des limites admises.
error-code-NotFound = Introuvable.
error-code-AlreadyExists = Existe déjà.
error-code-PermissionDenied = Cette identité n'a pas le droit de faire cela.
error-code-Unauthenticated = Identité inconnue du broker : vérifiez le certificat.
error-code-ResourceExhausted = Trop d'appels ou trop de données : réessayez plus tard ou en plus petit.
error-code-Unavailable = Le broker ou un service dont il dépend est indisponible : réessayez plus tard.
error-code-DeadlineExceeded = Délai dépassé : le résultat n'est pas connu ; renvoyez la même demande.
error-code-Cancelled = Appel interrompu.
error-code-Unimplemented = Cette méthode n'est pas servie ainsi.
error-code-Internal = Erreur interne du broker.
error-code-Unknown = Erreur inconnue.
error-code-Aborted = Opération interrompue par une autre : recommencez.
error-code-DataLoss = Données perdues ou corrompues.
error-code-Ok = Réussi.
claims-member = N° d'adhérent
claims-provider = Prestataire
approvals-state-withdrawn = retirée par son auteur
approvals-reason-required = Donnez le motif du rejet : la personne qui a proposé le lira.
approvals-outcome-closed = période { $number } clôturée
approvals-outcome-settled = règlement de la période { $number } enregistré
approvals-outcome-published = { $count ->
        [one] { $count } version de produit publiée
       *[other] { $count } versions de produit publiées
    }
approvals-outcome-out-of-order = une autre version du produit a été publiée depuis la proposition : celle-ci ne suivrait plus l'ordre des dates, rien n'a été publié ; proposez-la de nouveau avec une date de début après la dernière version.
approvals-outcome-starts-in-the-past = approuvée le jour de la date de début d'une nouvelle version ou après : les soins des jours passés restent réglés selon la version précédente, rien n'a été publié ; proposez-la de nouveau avec une date de début à partir de demain.
approvals-outcome-amounts-changed = les montants de la période ont changé depuis la proposition : rien n'a été clôturé, proposez de nouveau la clôture
approvals-outcome-period-changed = la période a changé depuis la proposition ({ $then } { $then ->
        [one] demande
       *[other] demandes
    } alors, { $now } maintenant, ou leurs montants) : rien n'a été clôturé, proposez de nouveau la clôture
identity-mutuelle-system = le système de { $id } (certificat)
identity-scheme-system = le système du régime { $id } (certificat)
identity-operator = l'opérateur { $id }
product-fixed-field = Forfait par acte
product-exclusions = exclus : { $list }
product-excluded-acts = actes exclus : { $list }
products-form-error = Ce formulaire n'a pas été accepté : { $fields }. Corrigez et proposez à nouveau.
cli-what = quoi
cli-proposed-at-utc = proposée le (UTC)

# The patient's notice of a coordinated claim (SchemeService.GetPatientNotice).
notice-head = Demande { $claim } du { $date } ({ $provider }) : facturé { $billed }.
notice-scheme = Payé par le régime { $who } : { $amount }.
notice-mutuelle = Payé par la mutuelle { $who } : { $amount }.
notice-patient = Reste à votre charge : { $amount }.
notice-why = Pourquoi :
notice-line = ligne { $n } ({ $act }) : { $amount }, { $why }
notice-uncovered = non couvert
notice-sms = Régime { $scheme }, mutuelle { $mutuelle }, reste à votre charge { $patient }. Demande { $claim }.
notice-title = Avis au patient
notice-sms-label = Par SMS :
product-waiting-all = délai de carence de { $days } jours pour tout le produit
remittance-title = Avis de paiement par bénéficiaire
remittance-heading = Avis de paiement : période { $number } de { $pair }, virement { $reference }
remittance-payee = Bénéficiaire du paiement
remittance-claims = Demandes
remittance-amount = Montant net
remittance-csv = CSV pour Excel
remittance-fhir = FHIR PaymentReconciliation
remittance-reference = Référence du virement
remittance-more = L'avis se poursuit :
remittance-owed = { $amount } à récupérer (rien n'est versé)
remittance-total-owed = Total à récupérer (rien n'est versé)
remittance-files = { $payee } :
remittance-first-page = Revenir à la première page
remittance-net-due = Net dû de la période (tous les bénéficiaires)
remittance-transfer-split = Le virement verse { $paid } aux bénéficiaires payés ; { $owed } sont à récupérer auprès de ceux qui doivent.
remittance-nothing-paid = Ce règlement ne verse rien : { $owed } sont à récupérer auprès de ceux qui doivent.
fhir-remittance-disposition = période { $number } de { $scheme } x { $mutuelle }
fhir-remittance-owed = { $amount } à récupérer auprès de ce bénéficiaire (ses indus dépassent ses demandes) : ce virement ne lui verse rien
cli-proposal-recorded = Proposition { $id } enregistrée (empreinte { $hash }) : elle s'appliquera quand un gestionnaire de { $mutuelle } l'aura approuvée dans la console (Approbations).
cli-several-operators = plusieurs certificats d'opérateur dans { $folder } ({ $ids }) : indiquez --cert et --key
cli-needs-tls = { $url } ne répond pas en gRPC sans chiffrement. Si c'est l'adresse gRPC du broker, il exige https (TLS) : utilisez --broker { $https } avec un certificat client (--certs, ou --cert et --key) ; si c'est celle de sa console, --broker prend l'adresse que le broker annonce au démarrage (« passerelle à l'écoute sur … »)
cli-unreachable = impossible de joindre le broker { $url } : { $detail }
cli-cannot-read = impossible de lire { $path } : { $detail }
cli-not-tls = { $url } ne parle pas TLS. Si c'est un broker de développement sans chiffrement, utilisez --broker { $http } ; si c'est l'adresse de ses métriques, --broker prend l'adresse que le broker annonce au démarrage (« passerelle à l'écoute sur … »)
cli-not-grpc = l'adresse donnée à --broker répond en HTTP, pas en gRPC (statut HTTP { $status }) : ce n'est pas l'adresse gRPC du broker, mais peut-être celle de sa console ou de ses métriques. --broker prend l'adresse que le broker annonce au démarrage (« passerelle à l'écoute sur … »)
cli-unknown-issuer = le certificat du broker { $url } n'est pas signé par l'autorité de certification donnée (--ca, ou ca.crt dans --certs) : { $detail }
cli-cert-and-key-go-together = --cert et --key vont ensemble
cli-the-broker-named-the-same-page-twice = le broker a désigné deux fois la même page
cli-no-certificate = aucun certificat { $role ->
        [scheme] du régime
        [mutuelle] de la mutuelle
       *[other] de l'opérateur
    } { $id } dans { $dir } (passez --cert et --key, ou --certs)
cli-product-row = { $column } (ligne de produit { $row } de cet adhérent)
cli-bad-rows-nothing-imported = { $count ->
        [one] { $count } ligne en erreur
       *[other] { $count } lignes en erreur
    } : rien n'est importé (corrigez-les, ou passez --skip-bad-rows pour importer les bonnes lignes)
cli-bad-cells-nothing-declared = { $count ->
        [one] { $count } cellule fausse
       *[other] { $count } cellules fausses
    } : rien n'est déclaré
cli-warning-a-skipped-row-has-no-member-number-no-member-is-end-dated-by-this-import = attention : une ligne écartée n'a pas de numéro d'adhérent ; cet import ne clôture aucun adhérent
remittance-xlsx = Classeur Excel
remittance-sheet = Avis de paiement
product-beneficiary-rule = pour les bénéficiaires « { $who } », { $category } : { $what }

# Prior authorizations (issue 20)
nav-authorizations = Accords préalables
pa-title = Accords préalables
pa-intro = Ce que la mutuelle s'est engagée à payer avant les soins, à la demande du régime. Tant qu'un accord est en vigueur, le montant engagé est réservé sur les plafonds de l'adhérent ; il est libéré quand la demande de remboursement qui le cite est payée, quand le régime l'annule, ou après sa date de fin.
pa-reference = Référence
pa-date = Soins prévus le
pa-valid-until = Valable jusqu'au
pa-committed = Engagé par la mutuelle
pa-patient = Reste à charge prévu
pa-state = État
pa-state-active = en vigueur (montant réservé)
pa-state-consumed = facturé par la demande { $claim }
pa-state-cancelled = annulé par le régime
pa-state-expired = expiré
pa-stay = séjour { $stay }
pa-extensions = { $n ->
    [one] prolongé une fois
   *[other] prolongé { $n } fois
}
pa-held = Engagé et en vigueur (sur les { $shown } accords les plus récents) : { $amount }.
pa-nothing-held = Aucun montant réservé en ce moment.
pa-none = Aucun accord préalable pour cette mutuelle.

# Opening balances (issue 20)
opening-title = Soldes d'ouverture
opening-link = Déclarer les soldes d'ouverture (adhésion en cours d'année)
opening-intro = Pour une mutuelle qui rejoint passerelle en cours d'année : ce que chaque adhérent a déjà consommé de ses plafonds cette année. Une ligne par adhérent et par plafond, colonnes numero_adherent ; plafond (beneficiaire, famille, categorie ou actes) ; categorie ; annee ; montant ; actes. Ces soldes ne sont pas des demandes et n'apparaissent sur aucun bordereau ; un solde déclaré à nouveau est corrigé de la différence, à la hausse ou à la baisse (les demandes déjà payées ne sont pas payées à nouveau).
opening-would = Si vous appliquez : { $set ->
        [one] { $set_shown } solde fixé
       *[other] { $set_shown } soldes fixés
    }, { $unchanged ->
        [one] { $unchanged_shown } inchangé
       *[other] { $unchanged_shown } inchangés
    }.
opening-applied = Appliqué : { $set ->
        [one] { $set_shown } solde fixé
       *[other] { $set_shown } soldes fixés
    }, { $unchanged ->
        [one] { $unchanged_shown } inchangé
       *[other] { $unchanged_shown } inchangés
    }.
opening-too-many = Ce fichier compte { $rows } { $count ->
        [one] ligne
       *[other] lignes
    } de soldes : au plus { $max } par envoi. Scindez-le en plusieurs fichiers (par exemple par plage de numéros d'adhérent) et envoyez-les l'un après l'autre ; un solde envoyé deux fois n'est compté qu'une fois.
opening-unknown-column = Colonne inconnue « { $column } » dans la première ligne. Colonnes possibles : numero_adherent ; plafond ; categorie ; annee ; montant ; actes (ou member_number, scope, category, year, amount, count), retirez les autres.
opening-col-member_number = numero_adherent
opening-col-scope = plafond
opening-col-category = categorie
opening-col-care_category = categorie
opening-col-year = annee
opening-col-amount = montant
opening-col-count = actes
opening-bad-member_number = pas adhérent de cette mutuelle
opening-bad-scope = plafond inconnu, ou déclaré deux fois (un foyer par deux de ses membres ?)
opening-bad-care_category = catégorie obligatoire pour un plafond de catégorie ou un nombre d'actes
opening-bad-year = année invalide
opening-bad-amount = montant invalide pour ce plafond (un nombre d'actes ne prend pas de montant)
opening-bad-count = nombre d'actes invalide pour ce plafond (un plafond en montant ne prend pas de nombre)

# Une ligne de commande refusée avant toute commande (broker/src/cli/usage.rs).
cli-usage-error = erreur
cli-usage-value-missing = il manque la valeur de « { $arg } »
cli-usage-value-invalid = valeur « { $value } » refusée pour « { $arg } »
cli-usage-possible-values = {" "}; valeurs possibles : { $values }
cli-usage-unknown-argument = option inconnue « { $arg } »
cli-usage-unknown-command = commande inconnue « { $command } »
cli-usage-missing-arguments = il manque { $args }
cli-usage-missing-command = « { $command } » attend une commande
cli-usage-commands = {" "}; commandes : { $values }
cli-usage-conflict = « { $arg } » ne va pas avec « { $prior } »
cli-usage-repeated = « { $arg } » ne se donne qu'une fois
cli-usage-no-equals = « { $arg } » prend sa valeur après un signe égal : { $arg }=…
cli-usage-unexpected-value = valeur « { $value } » en trop pour « { $arg } »
cli-usage-value-count = « { $arg } » attend { $expected } valeurs, { $given } données
cli-usage-not-utf8 = la ligne de commande contient des caractères qui ne sont pas en UTF-8
cli-usage-did-you-mean = {" "}; vouliez-vous dire « { $near } » ?
cli-usage-help-follows = il manque la commande ; voici son aide (en anglais) :
cli-usage-unexpected-positional = valeur en trop « { $arg } »
cli-usage-number-missing = il manque le nombre
cli-usage-number-too-large = « { $value } » est trop grand
cli-usage-not-a-number = « { $value } » n'est pas un nombre entier
cli-periods-start-at-one = « { $value } » ne nomme aucune période : elles se comptent à partir de 1
cli-usage-not-an-address = « { $value } » n'est pas une adresse avec son port (127.0.0.1:8443)
cli-usage-out-of-range = « { $value } » doit être entre { $low } et { $high }
cli-no-such-date = « { $value } » n'est pas un jour du calendrier (le jour d'abord, puis le mois : 31/12/2026)
cli-date-missing = il manque la date : 31/12/2026 (jour d'abord) ou 2026-12-31
cli-broker-not-an-address = --broker « { $url } » n'est pas une adresse : écrivez-la https://hôte:port (http:// pour un broker de développement sans chiffrement)
cli-usage-exclusive = « { $arg } » ne va avec aucune autre option
cli-usage-usage = Utilisation
cli-usage-more = Pour en savoir plus, ajoutez --help à la commande (aide en anglais).
cli-not-a-date = « { $value } » n'est pas une date : écrivez-la 31/12/2026 (jour d'abord) ou 2026-12-31
cli-not-a-claim-state = « { $value } » n'est pas un état de demande. États possibles : { $states }
quoted = « { $text } »
