# passerelle's console, in English. The same keys as fr.ftl (a test checks
# that none is missing).
app-name = passerelle
nav-dashboard = Dashboard
nav-claims = Claims
nav-members = Members
nav-periods = Statements
nav-partners = Partners
nav-users = Users
nav-password = Password
nav-sign-out = Sign out
nav-language = Français
signed-in-as = Signed in: { $name } ({ $role })
role-clerk = mutuelle clerk
role-manager = mutuelle manager
role-scheme = scheme staff
role-operator = operator
switch-mutuelle = Mutuelle
switch = Switch

signin-title = Sign in
signin-login = Login
signin-password = Password
signin-code = 6-digit code (authenticator app)
signin-code-hint = Required for operators.
signin-submit = Sign in
signin-refused = Wrong login, password or code.
signin-temporary-expired = This password was given to you more than { $hours } hours ago and no longer signs you in: ask an operator for a new one.
signin-wait = Too many attempts. Try again in { $seconds ->
    [one] { $seconds } second
   *[other] { $seconds } seconds
}.
signin-unavailable = Signing in is not possible right now. Try again in a moment.
signin-expired = Your session has ended (expired, closed by an operator, or signed out). Please sign in again.

dashboard-title = Dashboard
dashboard-open-period = Current period
dashboard-claims = Claims
dashboard-due = Amount the mutuelle owes
dashboard-pending = Pending claims
dashboard-per-scheme = Per scheme
dashboard-nothing-open = No claim in the open periods.
dashboard-partners = Partners
dashboard-federation = Total across the federation's mutuelles

claims-title = Claims
claims-filter = Filter
claims-state = State
claims-any = any
claims-from = Care from
claims-to = to
claims-mutuelle = Mutuelle
claims-none = No claim matches.
claims-none-operator = No claim waits on a mutuelle in this state. Without a mutuelle named, operators see the waiting claims only: name a mutuelle to see all of its claims.
claims-count = { $count ->
        [one] { $shown } claim
       *[other] { $shown } claims
    }
claims-next = Next page
claims-total = Total
claims-total-standing = Total, excluding cancelled claims
col-claim = Claim
col-scheme = Scheme
col-mutuelle = Mutuelle
col-state = State
col-provider = Provider
col-invoice = Invoice
col-date = Date of care
col-billed = Billed (B)
col-scheme-share = Scheme (S)
col-mutuelle-share = Mutuelle (M)
col-patient-share = Patient (P)
col-line = Line
col-act = Act
col-remainder = Remainder (R)
export-amount-heading = { $column } in { $currency }
export-total-claims = Claims total
export-cancelled-since = Cancelled after the close
export-end = End of the statement: { $lines ->
        [one] { $lines } line
       *[other] { $lines } lines
    } of { $claims ->
        [one] { $claims } claim
       *[other] { $claims } claims
    } (the period holds { $stored ->
        [one] { $stored } claim
       *[other] { $stored } claims
    }).
export-period-changed = Period { $number } was closed while its statement was being read: its lines would have mixed the provisional statement with the closed one. Ask for period { $number }'s statement again.
col-reasons = Reasons
col-member = Member
col-beneficiary = Beneficiary
col-period = Period

state-received = received
state-pending_partner = pending at the mutuelle
state-coordinated = coordinated
state-rejected = rejected
state-cancel_pending = cancel pending
state-cancelled = cancelled
state-open = open
state-closed = closed
state-settled = settled

claim-title = Claim { $id }
claim-rejected = Rejected: { $reason }
claim-cancel-not-delivered = Cancel not delivered to the mutuelle: to be done by hand in its own system ({ $detail }).
claim-last-error = Last error with the mutuelle: { $error }
claim-awaiting-mutuelle = The mutuelle has not answered yet: until it does, its share (M) reads 0 and the patient's (P) the whole remainder (R). These are not the final amounts: those are known once the mutuelle has answered.
claim-product = Product applied
claim-updated = Last change
claim-duplicate-of = Same invoice as claim
claim-prior-authorization = Prior authorization
claim-quotes-authorization = Prior authorization: { $reference }
claim-cancel-reason = Why it was cancelled
claim-indu = Claim { $claim } was in period { $period }, already closed: { $mutuelle } recovers from { $payee_type ->
        [member] member { $payee }
       *[other] provider { $payee }
    } the { $amount } it had counted for it (an overpayment, indu), { $into ->
        [0] to be deducted in the open period, when it closes
       *[other] deducted in period { $into }
    }.
claim-nothing-recovered = Claim { $claim } stays in period { $period }, already closed: { $mutuelle } had covered nothing of it, so there is nothing to recover.

members-title = Members
members-number = Member number
members-search = Search
members-not-found = No member with this number in this mutuelle.
member-covered-today = Covered on { $date }
member-covered-yes = yes (product { $product })
member-covered-yes-plain = yes
member-covered-no = no: { $why }
member-covered-own-system = the mutuelle decides in its own system
member-household = Household
member-dues = Dues paid until
member-dues-never = never
member-products = Products
member-product = Product
member-start = Start
member-end = End
member-running = running

periods-none = No period yet: the first opens with the first claim coordinated.
periods-title = Statements
periods-number = No.
periods-open = current
periods-claims = Claims
periods-net = Net due
periods-recoveries = Recoveries
periods-closed-at = Closed on
periods-settled-at = Settled on
periods-reference = Settlement reference
periods-view = View
statement-title = Statement { $scheme } – { $mutuelle }, period { $number }
statement-open-title = Provisional statement { $scheme } – { $mutuelle }, current period
statement-payee = Payee
statement-payee-provider = provider { $id }
statement-payee-member = member { $id }
statement-payee-heading = Payee: { $payee }
statement-export-xlsx = Export (Excel workbook)
statement-export-csv = Export (CSV for Excel)
statement-xlsx-too-large = This statement has more than { $max } lines, the most an Excel sheet holds: export it as CSV.
statement-print = Print
statement-signature = Board's approval
statement-more = The statement continues on the next page.
statement-page-subtotal = Subtotal of this page
statement-payee-continued = (continued from the previous page)
statement-payee-whole = — in the whole statement: { $claims ->
        [one] { $claims } claim
       *[other] { $claims } claims
    }, the mutuelle's share { $amount } (its lines are on several pages)
statement-paged-sign-export = This statement spans several pages: to sign it, use its export (workbook or CSV), which holds it whole; each payee's whole total is above its table.

partners-title = Partners
partners-adapter = Adapter
partners-pending = Pending
partners-oldest = Oldest
partners-circuit = Breaker
partners-paused = Paused
partners-last-success = Last success
partners-last-error = Last error
partners-pause = Pause
partners-resume = Resume
circuit-closed = closed
circuit-open = open
circuit-half_open = trial
yes = yes
no = no

password-title = Change my password
password-must-change = This password was given to you by an operator: choose your own before going on. You will then sign in again with it.
password-current = Current password
password-new = New password
password-rule = At least { $min } characters. A phrase of a few words is easier to remember than a complicated word.
password-confirm = New password, once more
password-submit = Change the password
password-mismatch = The two entries of the new password differ: type it again.
password-same = The new password is the current one: choose another.
password-current-wrong = Current password (or code) incorrect.
password-current-wrong-no-code = Current password incorrect.
password-length = Too short or too long: { $min } to { $max } characters.
password-weak = Too simple: a password of a few repeated characters is guessed. Choose a phrase of a few words.
password-changed-meanwhile = Your password was reset by an operator during this change: nothing was changed. Sign in again with the one they give you.
password-changed = Password changed. Sign in with the new one.
password-second-factor-title = Your own second factor
password-second-factor = Password changed. Your second factor was replaced too: the secret given with your account no longer signs in. Add this secret to your authenticator app now (it is shown only here, once), then sign in with your new password and a code of this secret.
password-second-factor-url = Address for the app (QR code)
password-sign-in-again = Sign in
users-title = Users
users-login = Login
users-name = Name
users-role = Role
users-scope = Scope
users-login-taken = The login « { $login } » is already an account’s: choose another.
users-state = State
users-enabled = enabled
users-disabled = disabled
users-sessions = Recent sessions
users-add = New account
users-create = Create
users-created = Account created
users-password = Temporary password
users-totp = Second-factor secret (authenticator app)
users-shown-once = Write them down now: they will not be shown again. The password signs in for { $hours } hours; at their first sign-in, the person chooses their own (an operator then also receives a second factor of their own, which replaces this one).
users-disable = Disable
users-enable = Enable again
users-revoke = End their sessions
users-revoked = { $count ->
        [one] { $count } session
       *[other] { $count } sessions
    } ended for { $login }.
users-address = Address
users-seen = Seen

error-title = Error
error-forbidden = You do not have access to this page.
error-not-allowed = This address is a console button's, not a page's: go back to the previous page and use the button.
error-not-found = Page or claim not found.
error-invalid = Invalid request: { $detail }
error-csrf = The form has expired. Reload the page and try again.
error-unavailable = Service unavailable for a moment: { $detail }
error-store-unavailable = The service is unavailable for a moment. Try again in a few minutes.
error-exports-busy = Too many statement exports are under way; try again in a minute.
error-internal = Internal error. The operator can find it in the log.
error-back = Back to the dashboard
date-invalid = invalid date "{ $value }": write it dd/mm/yyyy (or dd,mm,yyyy on a phone), for example 31/12/2026
date-no-such-day = the date "{ $value }" does not exist: check the day and the month (dd/mm/yyyy)
claims-dates-ignored = The list below leaves out the filter's dates: correct them, then filter again.

# The `passerelle users` command.
cli-user-added = Account { $login } created ({ $role }).
cli-user-password = Temporary password (shown once; it signs in for { $hours } hours): { $password }
cli-user-totp = Second factor: add this secret to an authenticator app: { $secret }
cli-user-totp-url = or this address (QR code): { $url }
cli-user-reset = Password of { $login } replaced; their sessions are ended. At their next console sign-in, the person chooses their own.
cli-user-disabled = Account { $login } disabled; their sessions are ended.
cli-user-unknown = no account is named { $login } (passerelle users list gives them)
cli-db-in-use = { $db }: a running broker (or another passerelle command) holds this database; on SQLite one process at a time opens it: run this command with the broker stopped.
cli-db-missing = no database at { $path }: check the path in the configuration (to start a new, empty database there, run `passerelle migrate`).
cli-db-empty = this database holds no passerelle schema yet: run `passerelle migrate` (if you expected your data here, check the path or address in the configuration: a new, empty database was found).
cli-db-too-old = the database schema is at version { $found }, older than this binary's { $want }: run `passerelle migrate` (after a backup, docs/operations.md).
cli-db-too-new = the database schema is at version { $found }, newer than this binary's { $want }: a newer passerelle migrated it; run that version or a newer one (to go back to this version, restore the backup taken before the upgrade).
cli-store-failed = the store failed: { $detail }
cli-users-in-console = With the broker running, an operator creates, disables and enables accounts and ends their sessions in the console (Users page).
cli-user-enabled = Account { $login } enabled again.
cli-user-revoked = { $count ->
        [one] 1 session
       *[other] { $count } sessions
    } of { $login } ended.
cli-user-code = Current code of { $login }: { $code }
cli-user-no-totp = Account { $login } has no second factor.
cli-error-detail = error: { $detail }
cli-warning-detail = warning: { $detail }

# The broker's own commands (`serve`, `migrate`, `conformance`, `dev`):
# what they print around the broker's own words, which stay English.
cli-signals = cannot install signal handlers: { $detail }
serve-listening = passerelle listening on { $addr }
serve-metrics = metrics on { $addr } (/metrics, /healthz, /readyz)
serve-console = web console: https://{ $addr }/
migrate-created = a new, empty database was created at { $path } (if your data should be there, check the path in the configuration).
migrate-done = schema at version { $version }
store-slow-collation = this database compares keys by the collation { $collation }, not as bytes, so every index lookup costs more. Recreate passerelle's database with LOCALE 'C.UTF-8' (docs/operations.md, section 1, says how).
conformance-pass = pass
conformance-fail = FAIL
conformance-elsewhere = (partner down, slow, malformed and share above R are checked in CI against the simulated partners)
conformance-check-eligibility = eligibility
conformance-check-golden-path = golden path
conformance-check-duplicate = duplicate
conformance-check-cancel = cancel
conformance-check-unmapped-code = unmapped code
conformance-covered = covered
conformance-not-covered = not covered
conformance-golden = M = { $m } of R = { $r }
conformance-duplicate-same = same key, same answer
conformance-duplicate-again = same key, same shares, but another reference ({ $first } then { $second }): the mutuelle adjudicated twice; it must honour the idempotency key (If-None-Exist in FHIR)
conformance-duplicate-other = the same key gave another answer
conformance-duplicate-first-failed = the first call failed
conformance-cancel-accepted = accepted
conformance-cancel-by-hand = not offered by this partner, as its adapter says: passerelle cancels in its own accounts, and a person cancels at the partner ({ $detail })
conformance-unmapped-answered = answered UNMAPPED_CODE without asking the mutuelle
conformance-unmapped-passed-through = no act table: codes pass through to the mutuelle (n/a; the test claim was cancelled)
dev-listening = passerelle dev broker listening on { $addr }
dev-data-tls = data: { $path } (SQLite), mutual TLS
dev-data-plaintext = data: { $path } (SQLite), PLAINTEXT (no client identity)
dev-certificates = certificates: { $dir } (CA, server, one per scheme, mutuelle and operator "dev")
dev-certificates-pick = client commands pick the dev certificate of the party they act for
dev-metrics = metrics: http://{ $addr }/metrics (probes /healthz, /readyz)
dev-console = console: https://{ $addr }/ (certificate from { $ca }; your browser will ask to trust it)
dev-accounts = demo accounts, password { $password }: agent (clerk, MUT-SOLIDARITE), gestion and controle (managers, MUT-SOLIDARITE),
dev-accounts-more = federation (manager of MUT-SOLIDARITE and MUT-ENSEIGNANTS), cnss (scheme staff),
dev-accounts-operator = ops (operator, with a 6-digit code from any authenticator app given the TOTP secret { $secret })
dev-schemes = schemes: CNSS, INAM, CANAM (delegates CMSS, INPS)
dev-mutuelles = mutuelles: MUT-SOLIDARITE (rules, adjudicated by passerelle), MUT-ENSEIGNANTS (grpc),
dev-mutuelles-more = MUT-IMIS (fhir-r4, openIMIS dialect), MUT-LEGACY (xml-http): the last three simulated
dev-members = members: CNSS TG-1001, TG-1002 (MUT-SOLIDARITE) and TG-3001 (MUT-IMIS);
dev-members-more = INAM TG-2001 (MUT-ENSEIGNANTS) and TG-4001 (MUT-LEGACY); CMSS ML-3001 (MUT-ENSEIGNANTS)
dev-try = try:
dev-stop = Ctrl-C stops.
dev-plaintext-warning = WARNING: serving PLAINTEXT gRPC: no encryption, no client identity; every request is trusted as the party it names. For development on this machine only.

# Why a line is not covered in full (codes of passerelle.common.v1.ReasonCode).
reason-UNSPECIFIED = unspecified reason
reason-SCHEME_REFUSED = refused by the scheme
reason-OUT_OF_BASKET_NOT_COVERED = out-of-basket act, not covered by the product
reason-OVERRUN_NOT_COVERED = overrun above the scheme tariff not covered
reason-PARTIAL_RATE = partial coverage rate
reason-CATEGORY_NOT_COVERED = category of care not covered
reason-PER_ACT_LIMIT = per-act limit reached
reason-CEILING_REACHED = ceiling reached
reason-COUNT_LIMIT_REACHED = maximum number of acts reached
reason-WAITING_PERIOD = waiting period running
reason-EXCLUDED_DIAGNOSIS = excluded diagnosis
reason-EXCLUDED_ACT = excluded act
reason-DUES_UNPAID = dues not paid up
reason-NO_PRODUCT = no product on that date
reason-UNKNOWN_MEMBER = not a member of the mutuelle
reason-FIXED_AMOUNT = fixed amount
reason-PARTNER_RULE = the mutuelle's rule
reason-DUPLICATE_INVOICE = invoice already presented
reason-PARTNER_ANSWER_INVALID = the mutuelle's answer was invalid
reason-PARTNER_REJECTED = rejected by the mutuelle
reason-UNMAPPED_CODE = code the mutuelle does not know
reason-PRIOR_AUTHORIZATION_REQUIRED = prior authorization required
reason-PRIOR_AUTHORIZATION_EXCEEDED = above the prior authorization
reason-PRIOR_AUTHORIZATION_NOT_ACTIVE = prior authorization already billed

# The broker's own reasons in detail (domain::DetailKey): values named
# *_amount are amounts in the claim's currency, *_date dates, *_bp rates,
# already written in this language; $category is the category's name.
detail-scheme-refused = refused by the scheme
detail-scheme-refused-because = refused by the scheme: { $reason }
detail-no-product = no product in force on the date of care
detail-dues-paid-until = dues paid until { $paid_until_date } only
detail-dues-none = no dues paid
detail-dues-not-paid = dues not paid up to the date of care
detail-act-excluded = act { $act } excluded by product { $product }
detail-category-not-covered = category "{ $category }" not covered
detail-diagnosis-excluded = diagnosis { $diagnosis } excluded
detail-waiting-period = waiting period: category "{ $category }" covered from { $from_date }
detail-waiting-period-all = waiting period: covered from { $from_date }
detail-authorization-required = act { $act } needs a prior authorization
detail-out-of-basket-not-covered = out-of-basket act not covered by the product
detail-out-of-basket-rate = out-of-basket act covered at { $rate_bp }
detail-fixed-amount = fixed amount of { $fixed_amount } per act
detail-ticket-moderateur-rate = ticket modérateur covered at { $rate_bp }
detail-overrun-not-covered = overrun above the scheme tariff not covered
detail-overrun-rate = overrun covered at { $rate_bp } only, the rest not covered
detail-per-act-limit = limit of { $limit_amount } per act
detail-category-count-limit = at most { $limit } "{ $category }" { $limit ->
        [one] act
       *[other] acts
    } a year: { $left ->
        [0] none was left
        [one] 1 was left
       *[other] { $left } were left
    }
detail-act-count-limit = at most { $limit } { $act } { $limit ->
        [one] act
       *[other] acts
    } { $per ->
        [day] a day
        [month] a month
        [stay] per stay
       *[other] a year
    }: { $left ->
        [0] none was left
        [one] 1 was left
       *[other] { $left } were left
    }
detail-authorized-billed-above = billed { $billed_amount }, above the authorized { $authorized_amount } and its tolerance: the committed { $committed_amount } is paid
detail-authorized-paid-up-to = paid up to the committed { $committed_amount } and its tolerance
detail-authorized-committed = the { $committed_amount } the prior authorization committed is paid
detail-ceiling-reached = { $scope ->
        [beneficiary-year] yearly ceiling per beneficiary
        [household-year] yearly ceiling per household
        [category-year] the category's yearly ceiling
        [stay] the stay's ceiling
       *[other] ceiling { $scope }
    } ({ $period }): { $left_amount } of { $limit_amount } was left
detail-category-ceiling-reached = yearly ceiling for "{ $category }" ({ $period }): { $left_amount } of { $limit_amount } was left
detail-claim-stay-ceiling-reached = ceiling per stay (a claim naming no stay counts as one): { $left_amount } of { $limit_amount } was left
detail-unmapped-code = { $what ->
        [member] member
        [act-code] act code
        [care-category] care category
        [facility] facility
        [diagnosis] diagnosis
       *[other] code
    } "{ $code }" has no mapping for this mutuelle
detail-not-a-member = not a member of this mutuelle
detail-no-mutuelle = no mutuelle known to passerelle covers this beneficiary
detail-card-mismatch = member number { $member_number } at { $mutuelle } is not this beneficiary's: check the card
detail-partner-no-cover = the mutuelle reports no cover in force
detail-partner-capped-at-remainder = the mutuelle valued the act by its own tariff; its share is capped at the remainder after the scheme
detail-partner-line-rejected = the mutuelle rejected this line, without saying why
detail-duplicate-invoice = invoice { $invoice } of provider { $provider } is already on claim { $claim }
detail-authorization-billed-elsewhere = prior authorization { $reference } was already billed by claim { $claim }

# The roster file.
roster-title = Members file
roster-link = Import the members file (CSV or Excel)
roster-help = Upload the mutuelle's whole members file (CSV separated by ";" or ",", in UTF-8 or Windows encoding, or an Excel .xlsx workbook; dates dd/mm/yyyy; columns scheme_id, beneficiary_id, member_number, product_id, product_start, and optionally household_id, paid_until, product_end, one row per product of a member). Checking shows what would change, changing nothing; members missing from the file will be ended.
roster-file = File (.csv or .xlsx)
roster-check = Check
roster-apply = Apply { $file }
roster-fix-first = Correct the rows in error in the file, then upload it again.
roster-expired = The checked file is no longer waiting: it was applied already (the page reloaded), or another was checked since, or the mutuelle changed. Nothing was applied again; upload it again if need be.
upload-too-large = This file is larger than { $mib } MiB, the most the console takes. Save it as .xlsx, more compact than a .csv (a members file must hold them all: do not split it).
upload-busy = Other files are being read: send yours again in a moment.
upload-cut = The file did not arrive whole (connection cut?): send it again.
roster-unreadable = Unreadable file: { $detail }
roster-old-excel = Unreadable file: this is an Excel workbook of the old format (.xls). In Excel, "Save as" an "Excel Workbook (.xlsx)" or "CSV (semicolon delimited)", then upload that file.
roster-not-xlsx = Unreadable file: this Excel workbook is damaged or incomplete (an interrupted transfer?). Save it again from Excel, or as CSV, then upload it.
roster-other-workbook = Unreadable file: this is not an Excel workbook (.xlsx); a LibreOffice (.ods) or other spreadsheet's workbook is first saved as .xlsx or CSV (semicolon delimited).
roster-no-members = This file holds no member: nothing to check.
roster-changes-more = … and { $count ->
        [one] { $count_shown } other change, applied with the others
       *[other] { $count_shown } other changes, applied with the others
    }.
roster-bad-more = … and { $count ->
        [one] { $count_shown } other row to correct
       *[other] { $count_shown } other rows to correct
    }.
roster-no-column = The first row has no column "{ $column }".
roster-unknown-column = Unknown column "{ $column }" in the first row. Possible columns: scheme_id, beneficiary_id, member_number, household_id, paid_until, product_id, product_start, product_end (remove the others).
roster-bad-rows = Rows in error
roster-line = Row
roster-column = Column
roster-problem = Problem
roster-empty = must not be empty
roster-not-a-date = "{ $value }" is not a date (dd/mm/yyyy)
roster-end-before-start = is before the product's start
roster-differs = differs from row { $line } of the same member ("{ $value }")
roster-excel-number = "{ $value }" is a number as Excel shows it in scientific notation, its digits lost: format the column as Text and type the identifier again
roster-overlaps-line = overlaps the product period of row { $line } of the same member: a member holds one product at a time, one must end before the other starts
roster-would = If you apply: { $added_shown } added, { $updated_shown } updated, { $ended_shown } ended, { $unchanged_shown } unchanged.
roster-would-once-fixed = The members without a wrong row would make: { $added_shown } added, { $updated_shown } updated, { $ended_shown } ended, { $unchanged_shown } unchanged (the members of the wrong rows are left as they are until their rows are corrected).
roster-changed-since = The mutuelle's members changed since the check: nothing was applied. Here is what this file would make now; apply again to confirm.
roster-confirm-first = Nothing was applied: tick the box confirming that the members missing from the file end, then apply again.
roster-more-refused = More rows are refused beyond these: correct these first, then check again.
roster-ending = Warning: { $ended ->
        [one] { $ended_shown } member missing from this file will end (their cover stops)
       *[other] { $ended_shown } members missing from this file will end (their cover stops)
    }. If this file holds only some of the members, do not apply it.
roster-confirm-ended = I confirm: { $ended ->
        [one] { $ended_shown } member ends
       *[other] { $ended_shown } members end
    }, half or more of the mutuelle's members.
roster-unknown-scheme = scheme "{ $value }" unknown to passerelle
roster-unknown-product = product "{ $value }" not declared by the mutuelle (see the Products page)
roster-number-case = differs from member number "{ $value }" only in letter case: write it as that one (another number would start the member's ceilings again)
cli-more-unnamed = { $count ->
        [one] and 1 more row the broker counted without naming it: check the file again once these are corrected
       *[other] and { $count } more rows the broker counted without naming them: check the file again once these are corrected
    }
roster-crowded-beneficiary = { $count } members of the mutuelle would have this beneficiary id, more than { $max }: it names one person (write the scheme's id, not a placeholder such as 0 or NEANT)
roster-covered-elsewhere-to = another mutuelle covers this beneficiary from { $from } to { $to }: one of the two memberships must end before the other starts
roster-covered-elsewhere = another mutuelle covers this beneficiary from { $from }, with no end: one of the two memberships must end before the other starts
roster-refused = refused by passerelle: { $detail }
roster-applied = Applied: { $added_shown } added, { $updated_shown } updated, { $ended_shown } ended, { $unchanged_shown } unchanged.
roster-changes = Changes
roster-change = Change
roster-change-added = added
roster-change-updated = updated
roster-change-end_dated = ended
roster-col-scheme_id = scheme (scheme_id)
roster-col-beneficiary_id = beneficiary id (beneficiary_id)
roster-col-member_number = member number (member_number)
roster-col-household_id = household (household_id)
roster-col-paid_until = dues paid until (paid_until)
roster-col-product_id = product (product_id)
roster-col-product_start = product start (product_start)
roster-col-product_end = product end (product_end)

# A claim's audit trail (operators).
audit-title = Audit trail
audit-when = When
audit-direction = Direction
audit-party = Party
audit-method = Call
audit-outcome = Outcome
audit-in = received
audit-out = sent
audit-omitted = rows not shown between the oldest { $head } and the newest { $tail }: { $omitted }
claim-retry = Retry now
chart-pending = Claims waiting per mutuelle
chart-oldest = (the oldest for { $minutes } min)
chart-due = Amount due per scheme, current period
statement-recovery = recovery (period { $period })
statement-cancelled-since = cancelled after the close
statement-from-period = From period
claims-dates-order = The start date is after the end date: correct the filter.
claims-operator-mutuelle = For this state, give a mutuelle (operators see the waiting claims of every mutuelle, the others per mutuelle).
chart-per-day = Coordinated claims and the mutuelle's share per day of care, last 14 days
chart-partial = { " " }(the first { $count } only)
done-paused = Partner paused: its claims wait, no call goes.
done-resumed = Partner resumed: its waiting claims go.
done-revoked = Sessions ended.
done-disabled = Account disabled; its sessions are ended.
done-enabled = Account enabled again.
done-retried = Retried: see the state and the trail below.
done-proposed = Proposal recorded: another manager of the mutuelle must approve it before it applies.
done-unchanged = Nothing to approve: that is already what is recorded.
done-approved = Proposal approved and applied.
done-rejected = Proposal rejected.
done-withdrawn = Proposal withdrawn.
done-already-decided = This proposal was decided already (by you, if you pressed twice): how it ended is in the history below.

nav-products = Products
nav-approvals = Approvals
date-hint = dd/mm/yyyy
skip-to-content = Skip to the content
category-consultation = Consultation
category-pharmacy = Pharmacy
category-lab = Laboratory tests
category-imaging = Imaging
category-hospitalisation = Hospital stay
category-maternity = Maternity
category-dental = Dental
category-optical = Optical
category-other = Other care

products-title = Products
products-version-waiting = Version { $version } of { $product } (from { $from }) proposed by { $who } on { $when }: it waits for another manager's approval (Approvals).
products-none = No product is recorded for this mutuelle.
products-new-version = Propose a new version of
products-new-heading = New version of { $id } ({ $name })
products-other-mutuelle = This form was opened for { $mutuelle }, and you now work on another mutuelle: nothing was proposed. Go back to { $mutuelle } (at the top of the page) to propose this version.
products-starts-too-early = The new version must start after version { $version }, in force since { $from }: choose a later start date.
products-starts-in-the-past = A new version starts after today ({ $today }): the care already given stays priced by version { $version }. Choose tomorrow or a later date.
products-version-pending = A version { $version } of this product is already proposed and waits for approval: have it approved or rejected (Approvals page) before proposing another.
products-changed-meanwhile = The product changed since this form was opened (another version published, or another mutuelle chosen in another tab): nothing was proposed. Here is version { $version } of { $id } as it stands; type your changes again.
products-new-intro = Version { $version } of { $id } starts from version { $from }; change what must change. It applies to care from the date chosen, once another manager approves it.
products-propose = Propose this version
products-bad-fields = These fields are not filled in correctly: { $fields }. Rates are percentages (80 or 80.5), amounts digits (50000), the date dd/mm/yyyy.
product-heading = { $id } version { $version } "{ $name }": from { $from } { $to }
product-to = to { $date }
product-open-ended = with no end date
product-used = already used by claims (no longer changes)
product-category = Category
product-coverage = Coverage
product-limits = Ceilings
product-waiting = Waiting period
product-rate = { $rate } of the patient's share (ticket modérateur)
product-fixed = { $amount } per act (at most the patient's share)
product-overrun = overrun covered at { $rate }
product-out-of-basket = out-of-basket covered at { $rate }
product-per-act = { $amount } per act
product-per-year = { $amount } per year per beneficiary
product-acts-per-year = { $count } acts per year
product-no-limit = no ceiling of its own
product-no-waiting = none
product-days = { $days } days
product-overall = For the whole product
product-beneficiary-year = { $amount } per year per beneficiary
product-household-year = { $amount } per year per household
product-stay = { $amount } per hospital stay
product-name = Product name
product-valid-from = Applies to care from
product-beneficiary-limit = Yearly ceiling per beneficiary (empty: none)
product-rate-field = Share of the patient's part covered
product-year-limit-field = Yearly ceiling (empty: none)
product-year-count-field = Acts per year (empty: no limit)

periods-propose-close = Propose closing the current period ({ $pair })
periods-close-waiting = Close of { $pair } proposed by { $who } on { $when }: it waits for another manager's approval (Approvals).
periods-propose-settle = Propose settling period { $number } ({ $pair })

approvals-title = Approvals
approvals-heading = Approvals · { $mutuelle }
approvals-none = No proposal is waiting for approval.
approvals-none-at-all = No proposal recorded.
approvals-history = Decided proposals
approvals-no-history = No proposal decided yet.
approvals-number = Proposal no.
approvals-change = Change
approvals-proposed-by = Proposed by
approvals-decided-by = Decided by
approvals-decided-at = On
approvals-outcome = Outcome
approvals-proposed = Proposed by { $who } on { $when } · hash { $hash }…
approvals-approve = Approve
approvals-reject = Reject
approvals-withdraw = Withdraw my proposal
approvals-reason = Reason for rejecting
approvals-yours = You made this proposal: another manager approves it.
approvals-managers-only = Only a manager of the mutuelle can approve it.
approvals-not-yours = You may not decide this proposal: only a manager of its mutuelle other than its author may approve it; its author may withdraw it.
approvals-unreadable = (unreadable content)
approvals-kind-close = Period close
approvals-kind-settle = Period settlement
approvals-kind-products = Product publication
approvals-kind-unknown = unknown
approvals-state-pending = waiting
approvals-state-approved = approved, being applied
approvals-state-applied = approved and applied
approvals-state-failed = approved, not applied: see the outcome
approvals-state-rejected = rejected
approvals-state-expired = expired (not decided within 7 days)
approvals-close = Close the current period of { $pair }: { $count ->
        [one] 1 claim
       *[other] { $claims } claims
    }, billed { $billed }, mutuelle share { $mutuelle }, recoveries { $recoveries }, net due { $net }.
approvals-settle = Record the payment of period { $number } of { $pair }, reference { $reference }, net due { $net }.
approvals-product = { $id } version { $version } "{ $name }", applies from { $from }

nav-certificates = Certificates
certs-title = Certificates and revocation lists
certs-kind = Kind
certs-file = File
certs-until = Valid until
certs-days = Days left
certs-ok = valid
certs-soon = to renew soon
certs-expired = expired
certs-none = No certificate read (listening without TLS).
certs-summary = { $soon ->
    [0] Nothing to renew: no certificate ends within 30 days, no revocation list within 7 days.
    [one] One certificate (under 30 days) or revocation list (under 7 days) is to renew.
   *[other] { $soon } certificates (under 30 days) or revocation lists (under 7 days) are to renew.
}
certs-kind-server = the broker's certificate
certs-kind-client_ca = clients' authority
certs-kind-crl_next_update = revocation list (next update)
certs-kind-partner_certificate = a partner's certificate
certs-kind-partner_crl_next_update = a partner's revocation list
claim-not-found-other-mutuelle = No claim of { $mutuelle }, the mutuelle you are working on, has this number. If it is another mutuelle's of yours, choose that mutuelle in the header, then open the claim again.
member-ceilings = Ceilings on { $date } ({ $product }): used and left
member-no-product = No product in force on { $date }: no ceiling.
ceiling-name = Ceiling
ceiling-period = Period
ceiling-limit = Limit
ceiling-used = Used
ceiling-act = acts per period
ceiling-next-allowed = next act covered on { $date }
product-act-limit-day = at most { $count ->
        [one] { $count } { $act } act
       *[other] { $count } { $act } acts
    } a day
product-act-limit-month = at most { $count ->
        [one] { $count } { $act } act
       *[other] { $count } { $act } acts
    } a month
product-act-limit-year = at most { $count ->
        [one] { $count } { $act } act
       *[other] { $count } { $act } acts
    } a year
product-act-limit-stay = at most { $count ->
        [one] { $count } { $act } act
       *[other] { $count } { $act } acts
    } per stay or followed pregnancy
product-prior-authorization = prior authorization required for: { $what } (valid { $days } days, tolerance { $rate })
ceiling-held = Held (prior authorizations)
ceiling-left = Left
ceiling-beneficiary-year = per year per beneficiary
ceiling-household-year = per year per household
ceiling-category-year = per year
ceiling-stay = per stay
ceiling-count = acts per year
chart-per-day-scheme = The scheme's coordinated claims and the mutuelles' share per day of care, last 14 days

# The command line (`passerelle` client commands): words of its tables
# and messages, keyed by the English text (`cli::output::Lang::t`).
cli-proposal = proposal
cli-change = change
cli-proposed-by = proposed by
cli-decided-by = decided by
cli-decided-at-utc = decided at (UTC)
cli-proposed-at = proposed at
cli-hash = hash
cli-claim = claim
cli-state = state
cli-scheme = scheme
cli-mutuelle = mutuelle
cli-member = member
cli-household = household
cli-provider = provider
cli-invoice = invoice
cli-date-of-care = date of care
cli-line = line
cli-act = act
cli-billed-b = billed (B)
cli-scheme-s = scheme (S)
cli-mutuelle-m = mutuelle (M)
cli-patient-p = patient (P)
cli-remainder-r = remainder (R)
cli-reasons = reasons
cli-in-force-amount-held = in force (amount held)
cli-billed-by-claim = billed by claim
cli-expired = expired
cli-prior-authorization = prior authorization
cli-valid-until = valid until
cli-tolerance = tolerance
cli-next-act-covered-on = next act covered on
cli-opening-balances-set = opening balances set
cli-dry-run-nothing-written = dry run: nothing written
cli-held = held
cli-cancelled-by-the-scheme = cancelled by the scheme
cli-expired-not-billed = expired, not billed
cli-total = total
cli-amounts-excluding-cancelled-claims = amounts excluding cancelled claims
cli-covered = covered
cli-not-covered = not covered
cli-yes = yes
cli-no = no
cli-product = product
cli-dues-paid-until = dues paid until
cli-ceiling = ceiling
cli-period = period
cli-limit = limit
cli-used = used
cli-remaining = remaining
cli-patient-bears = patient bears
cli-applies-to = applies to
cli-value = value
cli-co-payment = co-payment
cli-co-payment-rate = co-payment rate
cli-co-payment-maximum = co-payment maximum
cli-deductible = deductible
cli-excluded = excluded
cli-already-borne = already borne
cli-this-claim-had-already-been-cancelled-its-reason-stays-the-first-cancel-s = This claim had already been cancelled: its reason stays the first cancel's.
cli-family = family
cli-out-of-network = out of network
cli-annual = annual
cli-day = day
cli-lifetime = lifetime
cli-claims = claims
cli-recoveries = recoveries
cli-net-due = net due
cli-payee = payee
cli-closed = closed
cli-settled = settled
cli-open = open
cli-reference = reference
cli-received = received
cli-pending-at-mutuelle = pending at mutuelle
cli-coordinated = coordinated
cli-rejected = rejected
cli-cancel-pending = cancel pending
cli-cancelled = cancelled
cli-unknown = unknown
cli-adapter = adapter
cli-last-success = last success
cli-last-error = last error
cli-pending = pending
cli-when = when
cli-direction = direction
cli-party = party
cli-method = method
cli-outcome = outcome
cli-added = added
cli-updated = updated
cli-end-dated = ended
cli-unchanged = unchanged
cli-skipped-rows = skipped rows (members left as they are)
cli-dry-run-nothing-was-written = dry run: nothing was written
cli-from-period = from period
cli-amount = amount
cli-version = version
cli-valid-from = valid from
cli-valid-to = valid to
cli-in-use = in use
cli-result = result
cli-next-page = next page
cli-never = never
cli-beneficiary = beneficiary
cli-from = from
cli-to = to
cli-no-coverage-conflict = no coverage conflict
cli-nothing-to-change = nothing to change
cli-calls = calls
cli-paused = paused
cli-circuit-open-until = circuit open until
cli-circuit-half-open-trial-call = circuit half-open (trial call)
cli-going = in service
cli-oldest-pending = oldest pending
cli-error = error:

# What a refusal of the broker means (`Lang::refusal`): by its ErrorInfo
# reason, else by its gRPC code; the broker's own words follow as a detail.
error-refusal = { $said } (the broker says: "{ $detail }")
error-reason-MODIFIED_REQUEST = This claim number was already received with different content: resend the claim exactly as first sent to read its answer; to change it, cancel it first and send the corrected claim under a new number; another claim takes a number of its own.
error-reason-UNKNOWN_MEMBER = This beneficiary is a member of no known mutuelle on that date.
error-card-mismatch = The card's member number is not this beneficiary's at the mutuelle it names: check the card (or send the request without a member number).
error-card-not-member = This beneficiary is not, on that date, a member of the mutuelle the card names: check the card.
error-reason-NOT_FOUND = Not found.
error-reason-PARTNER_PAUSED = This mutuelle is paused by an operator: nothing is sent to it until it is resumed.
error-reason-CONTENT_ENCODING_UNSUPPORTED = Compressed request body: this door reads uncompressed bodies only (identity); send it again without Content-Encoding.
error-reason-PARTNER_UNAVAILABLE = The mutuelle does not answer for now: ask again in a few minutes.
error-reason-PARTNER_ANSWER_INVALID = The mutuelle's answer is invalid: it was not kept.
error-hold-released = What the mutuelle had set aside for this authorization was released.
error-hold-not-released = What the mutuelle had set aside for this authorization could not be released: send the same request again to release it.
error-hold-refused = The mutuelle refused to release what it had set aside for this authorization: it must be released in the mutuelle's own system.
partner-error-deadline = deadline of { $ms } ms missed
partner-error-paused = mutuelle { $mutuelle } paused by an operator: nothing is sent to it until it is resumed
partner-error-unavailable = mutuelle unavailable: { $detail }
partner-error-pending = not decided yet by the mutuelle (asked again later): { $detail }
partner-error-malformed = invalid answer: { $detail }
partner-error-malformed-hidden = invalid answer: the detail is in the claim's reason (for a prior authorization, in the scheme's error)
partner-error-rejected = refused by the mutuelle: { $detail }
partner-error-unsupported = not supported by this mutuelle: { $detail }
partner-error-openimis-no-cancel = openIMIS offers no cancellation over FHIR: reject claim { $claim } in openIMIS by hand
partner-error-probe = probe: { $error }
error-reason-PERMISSION_DENIED = This identity may not do that (the refusal is audited).
error-reason-OVERLOADED = Too many calls at once: try again in a moment.
error-reason-COVERAGE_CONFLICT = Two mutuelles declare this beneficiary on the same dates: an operator must settle it.
error-reason-COVERAGE_OVERLAP = These memberships overlap another mutuelle's for the same beneficiary: the first must end before the next begins.
error-reason-REFUSED = Refused in the current state of the data.
error-reason-PERIOD_NOT_SETTLED = This period is not settled yet: its remittance advice comes once its payment is recorded.
error-reason-PERIOD_CHANGED = The open period changed since its close was proposed (a claim cancelled meanwhile, or amounts changed): nothing was closed; propose the close again.
error-reason-PROPOSAL_DECIDED = This proposal has already been decided (applied, not applied, rejected or withdrawn): the approvals list says what became of it.
error-reason-PROPOSAL_EXPIRED = This proposal expired: it was not decided within 7 days; propose it again.
error-reason-TOO_MANY_LINES = Too many lines for one answer: they are read page by page, or one paid provider or member at a time.
error-reason-PRODUCT_IN_USE = This product version is already used by claims: it no longer changes; declare a new version.
error-reason-STORE_CORRUPT = A stored value cannot be read: tell the operator.
error-reason-STORE_UNAVAILABLE = The database is unavailable: try again later.
error-reason-APPROVAL_REQUIRED = Another person of the mutuelle must approve this change.
error-reason-PRIOR_AUTHORIZATION_NOT_ACTIVE = This prior authorization is no longer in force (billed, cancelled or expired): ask for a new one, or bill without it.
error-reason-PRIOR_AUTHORIZATION_CONSUMED = This prior authorization was billed already: cancel the claim first.
error-reason-PRIOR_AUTHORIZATION_UNSUPPORTED = This mutuelle's system gives no prior authorization.
error-reason-PRIOR_AUTHORIZATION_LIMIT = This beneficiary has too many prior authorizations in force: bill or cancel some first.
error-reason-ROSTER_IMPORT_RUNNING = An import or a check of this mutuelle's roster is already running: send this one again once it has ended.
error-reason-PRIOR_AUTHORIZATION_REFUSED = The mutuelle refused the prior authorization.
error-reason-DEADLINE_EXCEEDED = Deadline exceeded: the outcome is unknown; send the same claim again, it will not be paid twice.
error-code-InvalidArgument = Invalid request.
error-code-FailedPrecondition = Refused in the current state of the data.
error-code-OutOfRange = Out of the allowed bounds.
error-code-NotFound = Not found.
error-code-AlreadyExists = Already exists.
error-code-PermissionDenied = This identity may not do that.
error-code-Unauthenticated = Identity unknown to the broker: check the certificate.
error-code-ResourceExhausted = Too many calls or too much data: try again later, or smaller.
error-code-Unavailable = The broker or a service it depends on is unavailable: try again later.
error-code-DeadlineExceeded = Deadline exceeded: the outcome is unknown; send the same request again.
error-code-Cancelled = Call cancelled.
error-code-Unimplemented = This method is not served this way.
error-code-Internal = Internal error of the broker.
error-code-Unknown = Unknown error.
error-code-Aborted = Interrupted by another operation: try again.
error-code-DataLoss = Data lost or corrupted.
error-code-Ok = Succeeded.
claims-member = Member no.
claims-provider = Provider
approvals-state-withdrawn = withdrawn by its author
approvals-reason-required = Give the reason for the rejection: the person who proposed will read it.
approvals-outcome-closed = period { $number } closed
approvals-outcome-settled = payment of period { $number } recorded
approvals-outcome-published = { $count ->
        [one] { $count } product version published
       *[other] { $count } product versions published
    }
approvals-outcome-out-of-order = another version of the product was published since the proposal: this one would no longer follow the order of dates, nothing was published; propose it again starting after the latest version (detail: { $detail })
approvals-outcome-starts-in-the-past = approved on or after the start date of a new version: the care of the days already past stays priced by the version before it, nothing was published; propose it again starting tomorrow or later (detail: { $detail })
approvals-outcome-amounts-changed = the period's amounts changed since the proposal: nothing was closed; propose the close again
approvals-outcome-period-changed = the period changed since the proposal ({ $then } { $then ->
        [one] claim
       *[other] claims
    } then, { $now } now, or their amounts): nothing was closed; propose the close again
identity-mutuelle-system = { $id }'s system (certificate)
identity-scheme-system = scheme { $id }'s system (certificate)
identity-operator = operator { $id }
product-fixed-field = Fixed amount per act
product-exclusions = excluded: { $list }
product-excluded-acts = excluded acts: { $list }
products-form-error = This form was not accepted: { $fields }. Correct it and propose again.
cli-what = what
cli-proposed-at-utc = proposed at (UTC)

# The patient's notice of a coordinated claim (SchemeService.GetPatientNotice).
notice-head = Claim { $claim } of { $date } ({ $provider }): billed { $billed }.
notice-scheme = Paid by the scheme { $who }: { $amount }.
notice-mutuelle = Paid by the mutuelle { $who }: { $amount }.
notice-patient = Left for you to pay: { $amount }.
notice-why = Why:
notice-line = line { $n } ({ $act }): { $amount }, { $why }
notice-uncovered = not covered
notice-sms = Scheme { $scheme }, mutuelle { $mutuelle }, left for you to pay { $patient }. Claim { $claim }.
notice-title = Notice for the patient
notice-sms-label = By SMS:
product-waiting-all = waiting period of { $days } days for the whole product
remittance-title = Remittance advice by payee
remittance-heading = Remittance advice: period { $number } of { $pair }, transfer { $reference }
remittance-payee = Payee
remittance-claims = Claims
remittance-amount = Net amount
remittance-csv = CSV for Excel
remittance-fhir = FHIR PaymentReconciliation
remittance-reference = Transfer reference
remittance-more = The advice goes on:
remittance-owed = { $amount } to recover (nothing is paid)
remittance-total-owed = Total to recover (nothing is paid)
remittance-files = { $payee }:
remittance-first-page = Back to the first page
remittance-net-due = Net due for the period (every payee)
remittance-transfer-split = The transfer pays { $paid } to the payees who are paid; { $owed } is to be recovered from those who owe.
remittance-nothing-paid = This settlement pays no one: { $owed } is to be recovered from those who owe.
fhir-remittance-disposition = period { $number } of { $scheme } x { $mutuelle }
fhir-remittance-owed = { $amount } to recover from this payee (its recoveries outweigh its claims): nothing is paid to it by this transfer
cli-proposal-recorded = Proposal { $id } recorded (hash { $hash }): it applies once a manager of { $mutuelle } approves it in the console (Approvals).
cli-several-operators = several operator certificates in { $folder } ({ $ids }): pass --cert and --key
cli-needs-tls = { $url } does not answer plaintext gRPC. If it is the broker's gRPC address, this broker requires https (TLS): use --broker { $https } with a client certificate (--certs, or --cert and --key); if it is its console's, --broker takes the address the broker prints at start ("passerelle listening on …")
cli-unreachable = cannot reach the broker at { $url }: { $detail }
cli-cannot-read = { $path }: { $detail }
cli-not-tls = { $url } does not speak TLS. If it is a plaintext development broker, use --broker { $http }; if it is the broker's metrics address, --broker takes the address the broker prints at start ("passerelle listening on …")
cli-not-grpc = the address given to --broker answers in HTTP, not in gRPC (HTTP status { $status }): it is not the broker's gRPC address, but perhaps its console's or its metrics'. --broker takes the address the broker prints at start ("passerelle listening on …")
cli-unknown-issuer = the certificate of the broker at { $url } is not signed by the CA given (--ca, or ca.crt in --certs): { $detail }
cli-cert-and-key-go-together = --cert and --key go together
cli-the-broker-named-the-same-page-twice = the broker named the same page twice
cli-no-certificate = no certificate for { $role }:{ $id } in { $dir } (pass --cert and --key, or --certs)
cli-product-row = { $column } (product row { $row } of this member)
cli-bad-rows-nothing-imported = { $count ->
        [one] 1 bad row
       *[other] { $count } bad rows
    }: nothing imported (fix them, or pass --skip-bad-rows to import the good rows)
cli-bad-cells-nothing-declared = { $count ->
        [one] 1 bad cell
       *[other] { $count } bad cells
    }: nothing declared
cli-warning-a-skipped-row-has-no-member-number-no-member-is-end-dated-by-this-import = warning: a skipped row has no member number: no member is end-dated by this import
remittance-xlsx = Excel workbook
remittance-sheet = Remittance advice
product-beneficiary-rule = for "{ $who }" beneficiaries, { $category }: { $what }

# Prior authorizations (issue 20)
nav-authorizations = Prior authorizations
pa-title = Prior authorizations
pa-intro = What the mutuelle committed to pay before the care, at the scheme's request. While one is in force, the committed amount is held on the member's ceilings; it is released when the claim quoting it is paid, when the scheme cancels it, or after its last day.
pa-reference = Reference
pa-date = Care planned on
pa-valid-until = Valid until
pa-committed = Committed by the mutuelle
pa-patient = Patient's share planned
pa-state = State
pa-state-active = in force (amount held)
pa-state-consumed = billed by claim { $claim }
pa-state-cancelled = cancelled by the scheme
pa-state-expired = expired
pa-stay = stay { $stay }
pa-extensions = { $n ->
    [one] extended once
   *[other] extended { $n } times
}
pa-held = Committed and in force (of the { $shown } newest): { $amount }.
pa-nothing-held = Nothing held at the moment.
pa-none = No prior authorization for this mutuelle.

# Opening balances (issue 20)
opening-title = Opening balances
opening-link = Declare opening balances (joining during the year)
opening-intro = For a mutuelle joining passerelle during a year: what each member already consumed of their ceilings this year. One row per member and ceiling, columns member_number, scope (beneficiary-year, household-year, category-year or count), category, year, amount, count (French names also read). These balances are no claims and appear on no statement; a balance declared again is corrected by the difference, up or down (the claims already paid are not paid again).
opening-would = If you apply: { $set ->
        [one] { $set_shown } balance set
       *[other] { $set_shown } balances set
    }, { $unchanged_shown } unchanged.
opening-applied = Applied: { $set ->
        [one] { $set_shown } balance set
       *[other] { $set_shown } balances set
    }, { $unchanged_shown } unchanged.
opening-too-many = This file holds { $rows } { $count ->
        [one] balance row
       *[other] balance rows
    }: at most { $max } per upload. Split it into several files (by range of member numbers, say) and send them one after the other; a balance sent twice counts once.
opening-unknown-column = Unknown column « { $column } » in the first line. Possible columns: member_number, scope, category, year, amount, count (or numero_adherent, plafond, categorie, annee, montant, actes); remove the others.
opening-col-member_number = member_number
opening-col-scope = scope
opening-col-category = category
opening-col-care_category = category
opening-col-year = year
opening-col-amount = amount
opening-col-count = count
opening-bad-member_number = not a member of this mutuelle
opening-bad-scope = unknown ceiling, or declared twice (a household by two of its members?)
opening-bad-care_category = a category is required for a category ceiling or a count
opening-bad-year = not a valid year
opening-bad-amount = not a valid amount for this ceiling (a count takes no amount)
opening-bad-count = not a valid count for this ceiling (an amount ceiling takes no count)

# A command line refused before any command runs (broker/src/cli/usage.rs).
# English prints clap's own words; these keep the catalogues alike.
cli-usage-error = error
cli-usage-value-missing = a value is required for '{ $arg }'
cli-usage-value-invalid = invalid value '{ $value }' for '{ $arg }'
cli-usage-possible-values = ; possible values: { $values }
cli-usage-unknown-argument = unknown option '{ $arg }'
cli-usage-unknown-command = unrecognized subcommand '{ $command }'
cli-usage-missing-arguments = { $count ->
        [one] the following required argument was not provided: { $args }
       *[other] the following required arguments were not provided: { $args }
    }
cli-usage-missing-command = '{ $command }' requires a subcommand
cli-usage-commands = ; subcommands: { $values }
cli-usage-conflict = the argument '{ $arg }' cannot be used with '{ $prior }'
cli-usage-repeated = the argument '{ $arg }' cannot be used multiple times
cli-usage-no-equals = '{ $arg }' takes its value after an equal sign: { $arg }=…
cli-usage-unexpected-value = unexpected value '{ $value }' for '{ $arg }'
cli-usage-value-count = '{ $arg }' takes { $expected } values, { $given } given
cli-usage-not-utf8 = the command line holds characters that are not UTF-8
cli-usage-did-you-mean = ; did you mean '{ $near }'?
cli-usage-help-follows = the command is missing; here is its help:
cli-usage-unexpected-positional = unexpected value '{ $arg }'
cli-usage-number-missing = a number is needed
cli-usage-number-too-large = "{ $value }" is too large
cli-usage-not-a-number = "{ $value }" is not a whole number
cli-periods-start-at-one = "{ $value }" names no period: they are numbered from 1
cli-usage-not-an-address = "{ $value }" is not an address and port (127.0.0.1:8443)
cli-usage-out-of-range = "{ $value }" must be between { $low } and { $high }
cli-no-such-date = "{ $value }" is no day of the calendar (day first, then month: 31/12/2026)
cli-date-missing = a date is needed: 31/12/2026 (day first) or 2026-12-31
cli-broker-not-an-address = --broker "{ $url }" is not an address: write it https://host:port (http:// for a plaintext development broker)
cli-usage-exclusive = the argument '{ $arg }' cannot be used with one or more of the other specified arguments
cli-usage-usage = Usage
cli-usage-more = For more information, add --help to the command.
cli-not-a-date = "{ $value }" is not a date: write it 31/12/2026 (day first) or 2026-12-31
cli-not-a-claim-state = "{ $value }" is not a claim state. States: { $states }
quoted = "{ $text }"
