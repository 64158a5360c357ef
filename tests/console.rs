//! The console in a real browser: headless Chromium driven through
//! chromedriver (WebDriver) against a `passerelle dev` process, clicking
//! through the pages as a person would. Screenshots of each page, in
//! French, are written to `target/console-screenshots/`.
//!
//! Needs `chromium` and `chromedriver` on the PATH (Debian's chromium and
//! chromium-driver; `.ci/run` installs them). Outside CI a machine without
//! them is told so and the test returns; under CI=true it fails.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::common::process;
use crate::common::webdriver::{Client, Locator};

struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// chromedriver on a port of its own choosing (it prints it).
fn chromedriver() -> Option<Driver> {
    let found = Command::new("chromedriver")
        .arg("--version")
        .output()
        .is_ok()
        && Command::new("chromium").arg("--version").output().is_ok();
    if !found {
        let msg = "chromium and chromedriver are needed for the console's browser tests \
                   (apt-get install chromium chromium-driver)";
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{msg}");
        }
        eprintln!("{msg}: not run here");
        return None;
    }
    let mut child = Command::new("chromedriver")
        .args(["--port=0", "--allowed-ips=127.0.0.1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let port = loop {
        let line = lines.next().expect("chromedriver prints its port").unwrap();
        if let Some(rest) = line.split("started successfully on port ").nth(1) {
            break rest.trim_end_matches('.').trim().to_string();
        }
    };
    // Keep reading its output so that it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Some(Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    })
}

async fn browser(driver: &Driver, profile: &Path, width: u32, height: u32) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), "chrome".into());
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                // The dev broker's certificate comes from its own CA.
                "--ignore-certificate-errors",
                "--lang=fr-FR",
                format!("--window-size={width},{height}"),
                format!("--user-data-dir={}", profile.display()),
            ],
            "prefs": {"intl.accept_languages": "fr-FR,fr"},
        }),
    );
    // Headless windows are at least 500 pixels wide: a phone's viewport
    // is emulated.
    if width < 500 {
        caps["goog:chromeOptions"]["mobileEmulation"] = serde_json::json!({
            "deviceMetrics": {"width": width, "height": height, "pixelRatio": 2.0},
        });
    }
    Client::connect(&driver.url, serde_json::Value::Object(caps))
        .await
        .expect("a browser session")
}

fn shots_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("console-screenshots");
    std::fs::create_dir_all(&d).unwrap();
    d
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "{name}: a PNG");
    std::fs::write(shots_dir().join(format!("{name}.png")), png).unwrap();
}

/// The current document's identity: a new page (even of the same URL)
/// has a new time origin.
async fn document(c: &Client) -> String {
    loop {
        match c
            .execute(
                "return document.readyState === 'complete' ? String(performance.timeOrigin) : '';",
                vec![],
            )
            .await
        {
            Ok(v) if v.as_str().is_some_and(|s| !s.is_empty()) => {
                return v.as_str().unwrap().to_string();
            }
            // Between two documents: ask again.
            _ => continue,
        }
    }
}

/// Clicks what `at` finds and returns once the page it leads to is loaded.
async fn click(c: &Client, at: Locator<'_>) {
    let before = document(c).await;
    c.find(at).await.unwrap().click().await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while document(c).await == before {
        assert!(
            std::time::Instant::now() < deadline,
            "no new page after the click"
        );
    }
}

/// The page's text as WebDriver renders it (no-break spaces as spaces).
async fn text(c: &Client) -> String {
    c.find(Locator::Css("body"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .replace(['\u{202f}', '\u{a0}'], " ")
}

/// The bytes of the file a link of the page (the first `css` finds) serves,
/// fetched by the page itself (its session).
async fn download(c: &Client, css: &str) -> Vec<u8> {
    let v = c
        .execute(
            "const a = document.querySelector(arguments[0]);\
             return fetch(a.href).then(r => r.arrayBuffer()).then(b => Array.from(new Uint8Array(b)));",
            vec![serde_json::Value::String(css.to_string())],
        )
        .await
        .unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u8)
        .collect()
}

async fn h1(c: &Client) -> String {
    c.find(Locator::Css("h1"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn sign_in(c: &Client, base: &str, login: &str, password: &str, code: &str) {
    c.goto(&format!("{base}/sign-in")).await.unwrap();
    c.find(Locator::Css("input[name=login]"))
        .await
        .unwrap()
        .send_keys(login)
        .await
        .unwrap();
    c.find(Locator::Css("input[name=password]"))
        .await
        .unwrap()
        .send_keys(password)
        .await
        .unwrap();
    if !code.is_empty() {
        c.find(Locator::Css("input[name=code]"))
            .await
            .unwrap()
            .send_keys(code)
            .await
            .unwrap();
    }
    click(c, Locator::Css("button.primary")).await;
}

/// Bytes transferred for the page now shown: the document and every
/// resource it loaded, compressed as served (Resource Timing).
async fn transferred(c: &Client) -> u64 {
    let v = c
        .execute(
            "const n = performance.getEntriesByType('navigation')[0];\
             const r = performance.getEntriesByType('resource');\
             return [n.transferSize, r.length, r.reduce((a, e) => a + e.transferSize, 0)];",
            vec![],
        )
        .await
        .unwrap();
    let a = v.as_array().unwrap();
    let doc = a[0].as_u64().unwrap();
    assert!(doc > 0, "the document's size is measured");
    doc + a[2].as_u64().unwrap()
}

/// Text as French Windows saves it (Windows-1252; the test's text has no
/// character outside Latin-1).
fn windows_1252(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap())
        .collect()
}

/// A roster CSV (`;`) as an Excel workbook, dates as date serials the way
/// Excel stores them.
fn roster_xlsx(csv: &str) -> Vec<u8> {
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    let date_format = rust_xlsxwriter::Format::new().set_num_format("dd/mm/yyyy");
    for (r, line) in csv.lines().enumerate() {
        for (col, cell) in line.split(';').enumerate() {
            let date = cell.split('/').collect::<Vec<_>>();
            if r > 0 && date.len() == 3 {
                let d = rust_xlsxwriter::ExcelDateTime::from_ymd(
                    date[2].parse().unwrap(),
                    date[1].parse().unwrap(),
                    date[0].parse().unwrap(),
                )
                .unwrap();
                ws.write_datetime_with_format(r as u32, col as u16, &d, &date_format)
                    .unwrap();
            } else if !cell.is_empty() {
                ws.write_string(r as u32, col as u16, cell).unwrap();
            }
        }
    }
    wb.save_to_buffer().unwrap()
}

/// The passerelle CLI against the dev broker, as a scheme or mutuelle
/// system would call it.
fn cli(dev: &process::Dev, data: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_passerelle"))
        .env("PASSERELLE_BROKER", format!("https://{}", dev.addr))
        .env("PASSERELLE_CERTS", data.join("certs"))
        .env("LANG", "C")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clerk_and_an_operator_work_in_the_browser() {
    let Some(driver) = chromedriver() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // The broker's clock starts on 2 December 2026, 10:00 UTC: the demo
    // claim's day of care (20 November) is in the dashboard's last 14 days
    // whatever day the test runs.
    let mut dev = process::dev_at(tmp.path(), &data, 1_796_205_600_000);
    let console = dev.console_url();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // A scheme's system sends two claims: one routed to MUT-SOLIDARITE
    // (the clerk's), one to MUT-IMIS (another mutuelle's).
    cli(
        &dev,
        &data,
        &[
            "roster",
            "import",
            root.join("docs/examples/roster.csv").to_str().unwrap(),
            "--partner",
            "MUT-SOLIDARITE",
        ],
    );
    let claim = root.join("docs/examples/claim.toml");
    cli(&dev, &data, &["claim", "submit", claim.to_str().unwrap()]);
    let other = tmp.path().join("other.toml");
    std::fs::write(
        &other,
        std::fs::read_to_string(&claim)
            .unwrap()
            .replace("TG-1005", "TG-3001")
            .replace("CNSS-2026-000123", "CNSS-2026-000999")
            .replace("F-88412", "F-99999"),
    )
    .unwrap();
    cli(&dev, &data, &["claim", "submit", other.to_str().unwrap()]);

    let c = browser(&driver, &tmp.path().join("profile-agent"), 1280, 900).await;
    // Not signed in: the sign-in page, in French (the browser's language).
    c.goto(&format!("{console}/claims")).await.unwrap();
    assert!(c.current_url().await.unwrap().contains("/sign-in"));
    assert_eq!(h1(&c).await, "Connexion");
    shot(&c, "01-connexion").await;
    let first_load = transferred(&c).await;

    // A wrong password: refused, in French, nothing said of the account.
    sign_in(&c, &console, "agent", "not-the-password", "").await;
    assert!(
        text(&c)
            .await
            .contains("Identifiant, mot de passe ou code incorrect.")
    );

    sign_in(&c, &console, "agent", "demo-passerelle", "").await;
    assert_eq!(h1(&c).await, "Tableau de bord");
    let body = text(&c).await;
    assert!(
        body.contains("Session de Akosua Mensah (agent de mutuelle)"),
        "{body}"
    );
    assert!(body.contains("Montant dû par la mutuelle"));
    // The open period holds the clerk's claim: M = 1 600 XOF.
    assert!(
        body.contains("Montant dû par la mutuelle\n1 600 XOF"),
        "{body}"
    );
    // The chart of the last 14 days: the claim's day of care (20/11/2026),
    // with its count and the mutuelle's share.
    assert!(
        body.contains("Demandes coordonnées et part de la mutuelle par jour de soins")
            && body.contains("20/11/2026")
            && body.contains("1 · 1 600 XOF"),
        "{body}"
    );
    shot(&c, "02-tableau-de-bord").await;
    let dashboard = transferred(&c).await;

    // Claims, then one claim, by clicking.
    click(&c, Locator::LinkText("Demandes")).await;
    assert_eq!(h1(&c).await, "Demandes");
    let body = text(&c).await;
    assert!(
        body.contains("1 demande"),
        "only the clerk's mutuelle: {body}"
    );
    assert!(!body.contains("CNSS-2026-000999"));
    shot(&c, "03-demandes").await;
    // Filtered by member and by provider (a plain GET form).
    c.goto(&format!(
        "{console}/claims?member=SOL-0005&provider=CHU-SYLVANUS-OLYMPIO"
    ))
    .await
    .unwrap();
    assert!(text(&c).await.contains("1 demande"));
    c.goto(&format!("{console}/claims?member=SOL-0001"))
        .await
        .unwrap();
    assert!(text(&c).await.contains("0 demande"));
    c.goto(&format!("{console}/claims")).await.unwrap();
    click(&c, Locator::LinkText("CNSS-2026-000123")).await;
    assert_eq!(h1(&c).await, "Demande CNSS-2026-000123");
    let body = text(&c).await;
    // The patient's notice, to print or send by SMS.
    assert!(
        body.contains("Avis au patient")
            && body.contains("Reste à votre charge : 15 600 XOF.")
            && body.contains("Par SMS : Régime 6400 XOF, mutuelle 1600 XOF, reste à votre charge 15600 XOF. Demande CNSS-2026-000123."),
        "{body}"
    );
    for expected in [
        "coordonnée",
        "20/11/2026",
        "acte hors panier, non couvert par le produit",
        "dépassement du tarif du régime non couvert",
    ] {
        assert!(body.contains(expected), "{expected}: {body}");
    }
    shot(&c, "04-demande").await;

    // A filter with a date typed day first; month first is refused, in
    // French.
    c.goto(&format!("{console}/claims?from=21%2F11%2F2026"))
        .await
        .unwrap();
    assert!(text(&c).await.contains("0 demande"));
    c.goto(&format!("{console}/claims?from=11%2F21%2F2026"))
        .await
        .unwrap();
    // Said above the filters, which keep what was typed; a day that does
    // not exist is said as such.
    let body = text(&c).await;
    assert!(
        body.contains("date invalide « 11/21/2026 » : écrivez-la jj/mm/aaaa")
            && body.contains("Filtrer"),
        "{body}"
    );
    c.goto(&format!("{console}/claims?from=31%2F02%2F2026"))
        .await
        .unwrap();
    assert!(
        text(&c)
            .await
            .contains("la date « 31/02/2026 » n'existe pas : vérifiez le jour et le mois")
    );

    // Another mutuelle's claim by its URL reads as a missing one (404),
    // and its audit row says why.
    c.goto(&format!("{console}/claims/CNSS/CNSS-2026-000999"))
        .await
        .unwrap();
    assert!(text(&c).await.contains("Page ou demande introuvable."));
    shot(&c, "05-refus").await;
    let audit = cli(
        &dev,
        &data,
        &[
            "--json",
            "admin",
            "audit",
            "--scheme",
            "CNSS",
            "CNSS-2026-000999",
        ],
    );
    assert!(
        audit.contains("mutuelle:MUT-SOLIDARITE/user:agent")
            && audit.contains("GetClaim")
            && audit.contains("NotFound")
            && audit.contains("out of scope: mutuelle MUT-SOLIDARITE may not act for mutuelle"),
        "{audit}"
    );

    // The statement of the open period, and its CSV for French Excel,
    // whose totals are the claim's.
    click(&c, Locator::LinkText("Bordereaux")).await;
    assert_eq!(h1(&c).await, "Bordereaux");
    shot(&c, "06-bordereaux").await;
    click(&c, Locator::LinkText("en cours")).await;
    let body = text(&c).await;
    assert!(body.contains("prestataire CHU-SYLVANUS-OLYMPIO"), "{body}");
    // Provisional: said in its title, and not for the board to sign.
    assert!(
        body.contains("Bordereau provisoire CNSS – MUT-SOLIDARITE, période en cours")
            && !body.contains("Visa du conseil"),
        "{body}"
    );
    shot(&c, "07-bordereau").await;
    let csv = c
        .execute(
            "const a = document.querySelector('a[href$=\".csv\"]');\
             return fetch(a.href).then(r => r.arrayBuffer()).then(b => Array.from(new Uint8Array(b)));",
            vec![],
        )
        .await
        .unwrap();
    let bytes: Vec<u8> = csv
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u8)
        .collect();
    assert!(bytes.starts_with(b"\xef\xbb\xbf"), "UTF-8 with a BOM");
    let csv = String::from_utf8(bytes[3..].to_vec()).unwrap();
    let mut rows = csv.split("\r\n").filter(|l| !l.is_empty());
    let head = rows.next().unwrap();
    assert!(
        head.starts_with("\"Régime\";\"Mutuelle\";\"Période\""),
        "{head}"
    );
    // The lines (their first cell the scheme), then the totals row,
    // which adds them up.
    let (lines, totals): (Vec<&str>, Vec<&str>) = rows.partition(|r| r.starts_with("\"CNSS\";"));
    // B, S, M and P (the state of a line follows them).
    let amounts = |r: &str| -> Vec<i64> {
        r.split(';')
            .skip(10)
            .take(4)
            .map(|c| c.parse::<i64>().unwrap())
            .collect()
    };
    let mut sums = vec![0i64; 4];
    for r in &lines {
        sums.iter_mut().zip(amounts(r)).for_each(|(s, v)| *s += v);
    }
    assert_eq!(sums, [23_600, 6_400, 1_600, 15_600]);
    assert_eq!(sums[0], sums[1] + sums[2] + sums[3], "S + M + P = B");
    assert_eq!(totals.len(), 1, "{csv}");
    assert!(totals[0].starts_with("\"Total\";"), "{csv}");
    assert_eq!(amounts(totals[0]), sums, "{csv}");
    // The same statement as an Excel workbook: its totals row too.
    let bytes = download(&c, "a[href$='.xlsx']").await;
    let rows = passerelle_files::xlsx::first_sheet(&bytes).unwrap().rows;
    let header: Vec<String> = rows[0].iter().map(|c| format!("{c:?}")).collect();
    assert!(header[0].contains("Régime"), "{header:?}");
    let last = rows.last().unwrap();
    assert!(matches!(&last[0], passerelle_files::xlsx::Cell::Text(t) if t == "Total"));
    let figures: Vec<String> = last[10..14]
        .iter()
        .map(|c| match c {
            passerelle_files::xlsx::Cell::Number(n) => n.clone(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(figures, ["23600", "6400", "1600", "15600"]);

    // The period closed and paid, each by one manager and approved by
    // another (maker-checker), then the claim cancelled: the next
    // statement carries the recovery (indu), on the page and in the CSV,
    // whose M column sums to the net due.
    let gestion = browser(&driver, &tmp.path().join("profile-gestion"), 1280, 900).await;
    sign_in(&gestion, &console, "gestion", "demo-passerelle", "").await;
    let controle = browser(&driver, &tmp.path().join("profile-controle"), 1280, 900).await;
    sign_in(&controle, &console, "controle", "demo-passerelle", "").await;
    // A clerk sees no proposal form.
    c.goto(&format!("{console}/periods")).await.unwrap();
    assert!(
        c.find(Locator::Css("form[action^='/proposals/']"))
            .await
            .is_err(),
        "a clerk proposes nothing"
    );
    gestion.goto(&format!("{console}/periods")).await.unwrap();
    click(
        &gestion,
        Locator::Css("form[action='/proposals/close/CNSS/MUT-SOLIDARITE'] button"),
    )
    .await;
    let body = text(&gestion).await;
    assert!(
        body.contains("Proposition enregistrée")
            && body.contains("Clôturer la période en cours de CNSS – MUT-SOLIDARITE : 1 demande"),
        "{body}"
    );
    // Its author cannot approve it, and nothing is closed yet.
    assert!(body.contains("Vous avez fait cette proposition"), "{body}");
    assert!(
        gestion
            .find(Locator::Css("form[action$='/approve']"))
            .await
            .is_err(),
        "no approve button for its author"
    );
    shot(&gestion, "18-proposition").await;
    controle.goto(&format!("{console}/periods")).await.unwrap();
    assert!(text(&controle).await.contains("en cours"));
    // Another manager approves: the period is closed.
    controle
        .goto(&format!("{console}/approvals"))
        .await
        .unwrap();
    shot(&controle, "19-approbation").await;
    // A rejection says why: without a reason (the browser's check taken
    // away), refused, and nothing decided.
    controle
        .execute(
            "document.querySelector('form[action$=\"/reject\"] input[name=reason]').removeAttribute('required');",
            vec![],
        )
        .await
        .unwrap();
    click(&controle, Locator::Css("form[action$='/reject'] button")).await;
    assert!(text(&controle).await.contains("Donnez le motif du rejet"));
    controle
        .goto(&format!("{console}/approvals"))
        .await
        .unwrap();
    click(&controle, Locator::Css("form[action$='/approve'] button")).await;
    let body = text(&controle).await;
    assert!(
        body.contains("Proposition approuvée et appliquée")
            && body.contains("période 1 clôturée")
            && body.contains("Kodjo Agbeko")
            && body.contains("Afi Lawson"),
        "{body}"
    );
    // The command line names them too: the listing gives the names.
    let listed = cli(
        &dev,
        &data,
        &[
            "--lang",
            "fr",
            "approvals",
            "list",
            "--all",
            "--partner",
            "MUT-SOLIDARITE",
        ],
    );
    assert!(
        listed.contains("Kodjo Agbeko")
            && listed.contains("Afi Lawson")
            && listed.contains("décidée par")
            && listed.contains("décidée le (UTC)"),
        "{listed}"
    );
    // The settlement: proposed by controle, approved by gestion.
    controle.goto(&format!("{console}/periods")).await.unwrap();
    controle
        .find(Locator::Css(
            "form[action='/proposals/settle/CNSS/MUT-SOLIDARITE/1'] input[name=reference]",
        ))
        .await
        .unwrap()
        .send_keys("VIR-2026-12")
        .await
        .unwrap();
    click(
        &controle,
        Locator::Css("form[action='/proposals/settle/CNSS/MUT-SOLIDARITE/1'] button"),
    )
    .await;
    gestion.goto(&format!("{console}/approvals")).await.unwrap();
    assert!(
        text(&gestion)
            .await
            .contains("référence VIR-2026-12, net dû 1 600 XOF")
    );
    click(&gestion, Locator::Css("form[action$='/approve'] button")).await;
    assert!(
        text(&gestion)
            .await
            .contains("règlement de la période 1 enregistré")
    );
    gestion.goto(&format!("{console}/periods")).await.unwrap();
    let body = text(&gestion).await;
    assert!(
        body.contains("réglée") && body.contains("VIR-2026-12"),
        "{body}"
    );
    // The settled period's remittance advice, payee by payee, with each
    // payee's part as a CSV for Excel and as FHIR.
    gestion
        .goto(&format!("{console}/periods/CNSS/MUT-SOLIDARITE/1"))
        .await
        .unwrap();
    click(
        &gestion,
        Locator::LinkText("Avis de paiement par bénéficiaire"),
    )
    .await;
    let body = text(&gestion).await;
    assert!(
        body.contains("virement VIR-2026-12")
            && body.contains("prestataire CHU-SYLVANUS-OLYMPIO")
            // The payee's row, and the period's net due under the table.
            && body.matches("1 600 XOF").count() == 2
            && body.contains("Net dû de la période"),
        "{body}"
    );
    shot(&gestion, "25-avis-de-paiement").await;
    let files = gestion
        .execute(
            "const a = Array.from(document.querySelectorAll('a[href$=\".csv\"], a[href$=\".json\"]')).map(x => x.href);\
             return Promise.all(a.map(h => fetch(h).then(r => r.text())));",
            vec![],
        )
        .await
        .unwrap();
    let files: Vec<String> = files
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(files.len(), 2, "a CSV and a FHIR resource");
    assert!(
        files[0].contains("\"VIR-2026-12\"")
            && files[0].contains(";1000;\r\n")
            // Its totals row, as the workbook's (the state's column empty).
            && files[0].ends_with("\r\n\"Total\";;;;;;;1600;\r\n"),
        "{}",
        files[0]
    );
    let fhir: serde_json::Value = serde_json::from_str(&files[1]).unwrap();
    assert_eq!(fhir["resourceType"], "PaymentReconciliation");
    assert_eq!(fhir["paymentAmount"]["value"].to_string(), "1600");
    // And as a workbook whose totals row is the amount paid.
    let bytes = download(&gestion, "a[href$='.xlsx']").await;
    let rows = passerelle_files::xlsx::first_sheet(&bytes).unwrap().rows;
    let last = rows.last().unwrap();
    assert!(matches!(&last[0], passerelle_files::xlsx::Cell::Text(t) if t == "Total"));
    assert!(
        matches!(&last[7], passerelle_files::xlsx::Cell::Number(n) if n == "1600"),
        "{last:?}"
    );
    // Products in words; a new version proposed by one manager, applied
    // once the other approves it.
    gestion.goto(&format!("{console}/products")).await.unwrap();
    let body = text(&gestion).await;
    assert!(
        body.contains("SOLIDARITE-ESSENTIEL version 1") && body.contains("du ticket modérateur"),
        "{body}"
    );
    shot(&gestion, "20-produits").await;
    click(
        &gestion,
        Locator::Css("a[href='/products/SOLIDARITE-ESSENTIEL/new']"),
    )
    .await;
    gestion
        .find(Locator::Css("input[name=valid_from]"))
        .await
        .unwrap()
        .send_keys("01/01/2027")
        .await
        .unwrap();
    gestion
        .execute(
            "document.querySelector('input[name=rate_0]').value = '';",
            vec![],
        )
        .await
        .unwrap();
    gestion
        .find(Locator::Css("input[name=rate_0]"))
        .await
        .unwrap()
        .send_keys("90,5")
        .await
        .unwrap();
    shot(&gestion, "21-nouvelle-version").await;
    click(&gestion, Locator::Css("form.stack button")).await;
    let body = text(&gestion).await;
    assert!(
        body.contains("Proposition enregistrée")
            && body.contains("SOLIDARITE-ESSENTIEL version 2")
            && body.contains("applicable à partir du 01/01/2027"),
        "{body}"
    );
    // The approver reads every rule of the version, not only its name.
    controle
        .goto(&format!("{console}/approvals"))
        .await
        .unwrap();
    let body = text(&controle).await;
    assert!(
        body.contains("SOLIDARITE-ESSENTIEL version 2 « Essentiel » : du 01/01/2027")
            && body.contains("90,5 % du ticket modérateur")
            && body.contains("5 000 XOF par acte"),
        "{body}"
    );
    click(&controle, Locator::Css("form[action$='/approve'] button")).await;
    controle.goto(&format!("{console}/products")).await.unwrap();
    let body = text(&controle).await;
    assert!(
        body.contains("SOLIDARITE-ESSENTIEL version 2")
            && body.contains("90,5 % du ticket modérateur"),
        "{body}"
    );
    gestion.close().await.unwrap();
    controle.close().await.unwrap();
    cli(
        &dev,
        &data,
        &[
            "claim",
            "cancel",
            "--scheme",
            "CNSS",
            "CNSS-2026-000123",
            "--reason",
            "erreur de saisie",
        ],
    );
    c.goto(&format!("{console}/periods/CNSS/MUT-SOLIDARITE/0"))
        .await
        .unwrap();
    let body = text(&c).await;
    assert!(
        body.contains("Indus") && body.contains("CNSS-2026-000123") && body.contains("-1 600"),
        "{body}"
    );
    shot(&c, "17-indu").await;
    let csv = c
        .execute(
            "const a = document.querySelector('a[href$=\".csv\"]');\
             return fetch(a.href).then(r => r.text());",
            vec![],
        )
        .await
        .unwrap();
    let csv = csv.as_str().unwrap().to_string();
    assert!(csv.contains("\"indu (période 1)\""), "{csv}");
    assert!(
        csv.contains("\"prestataire CHU-SYLVANUS-OLYMPIO\""),
        "{csv}"
    );
    let m: i64 = csv
        .split("\r\n")
        .filter(|l| l.starts_with("\"CNSS\";"))
        .map(|l| l.split(';').nth(12).unwrap().parse::<i64>().unwrap())
        .sum();
    assert_eq!(m, -1_600, "the M column sums to the net due");
    // The recovery's row has no B, S or P; the last row is the net due.
    let recovery = csv
        .lines()
        .find(|l| l.contains("\"indu (période 1)\""))
        .unwrap();
    assert!(recovery.ends_with(";;;-1600;;"), "{recovery}");
    assert!(
        csv.ends_with("\r\n\"Net dû\";;;;;;;;;;;;-1600;;\r\n"),
        "{csv}"
    );
    // The claim's own page says why it was cancelled and what follows.
    c.goto(&format!("{console}/claims/CNSS/CNSS-2026-000123"))
        .await
        .unwrap();
    let body = text(&c).await;
    assert!(
        body.contains("Motif de l'annulation")
            && body.contains("erreur de saisie")
            && body.contains("La demande CNSS-2026-000123 était dans la période 1, déjà clôturée")
            && body.contains(
                "auprès du prestataire CHU-SYLVANUS-OLYMPIO (un indu), à déduire dans la période en cours, à sa clôture."
            ),
        "{body}"
    );

    // The members file: a CSV saved by French Excel (Windows-1252, `;`)
    // with a bad date is checked, its bad row named in French by line and
    // column; the corrected workbook (XLSX) is checked, then applied.
    let roster = std::fs::read_to_string(root.join("docs/examples/roster.csv")).unwrap();
    let bad = format!(
        "{roster}CNSS;TG-1009;SOL-0009;SOL-H09;31/12/2026;SOLIDARITE-ESSENTIEL;32/13/2026;\n"
    );
    let bad_path = tmp.path().join("adhérents.csv");
    std::fs::write(
        &bad_path,
        windows_1252(&bad.replace("SOL-H09", "SOL-H09 é")),
    )
    .unwrap();
    click(&c, Locator::LinkText("Adhérents")).await;
    click(&c, Locator::Css("a[href='/roster']")).await;
    assert_eq!(h1(&c).await, "Fichier des adhérents");
    c.find(Locator::Css("input[type=file]"))
        .await
        .unwrap()
        .send_keys(bad_path.to_str().unwrap())
        .await
        .unwrap();
    click(&c, Locator::Css("button[value=check]")).await;
    let body = text(&c).await;
    assert!(
        body.contains(
            "5 début du produit (product_start) « 32/13/2026 » n'est pas une date (jj/mm/aaaa) SOL-0009"
        ),
        "{body}"
    );
    assert!(body.contains("Corrigez les lignes en erreur"));
    shot(&c, "12-adherents-erreurs").await;
    let good_path = tmp.path().join("adhérents.xlsx");
    std::fs::write(
        &good_path,
        roster_xlsx(&bad.replace("32/13/2026", "01/12/2026")),
    )
    .unwrap();
    c.find(Locator::Css("input[type=file]"))
        .await
        .unwrap()
        .send_keys(good_path.to_str().unwrap())
        .await
        .unwrap();
    click(&c, Locator::Css("button[value=check]")).await;
    let body = text(&c).await;
    assert!(
        body.contains("Si vous appliquez : 1 ajouté, 0 modifié, 0 sorti, 3 inchangés."),
        "{body}"
    );
    shot(&c, "13-adherents-verification").await;
    // An apply is made only if the file still does what the check showed
    // (the members may have changed since): told otherwise, nothing is
    // applied and the new check is shown, to apply again.
    c.execute(
        "document.querySelector('input[name=shown]').value = '9/9/9/9';",
        vec![],
    )
    .await
    .unwrap();
    click(&c, Locator::Css("button[value=apply]")).await;
    let body = text(&c).await;
    assert!(
        body.contains("ont changé depuis la vérification : rien n'a été appliqué")
            && body.contains("Si vous appliquez : 1 ajouté, 0 modifié, 0 sorti, 3 inchangés."),
        "{body}"
    );
    click(&c, Locator::Css("button[value=apply]")).await;
    assert!(
        text(&c)
            .await
            .contains("Appliqué : 1 ajouté, 0 modifié, 0 sorti, 3 inchangés.")
    );
    // A file of one member would end the four others: said before, and
    // applied only once confirmed (the box is required; the broker checks
    // it too, here with the browser's check taken away).
    let partial = tmp.path().join("un-adherent.csv");
    let first_two: Vec<&str> = roster.lines().take(2).collect();
    std::fs::write(&partial, format!("{}\n", first_two.join("\n"))).unwrap();
    c.find(Locator::Css("input[type=file]"))
        .await
        .unwrap()
        .send_keys(partial.to_str().unwrap())
        .await
        .unwrap();
    click(&c, Locator::Css("button[value=check]")).await;
    let body = text(&c).await;
    assert!(
        body.contains("Attention : 3 adhérents absents de ce fichier seront sortis")
            && body.contains("Je confirme : 3 adhérents sortent"),
        "{body}"
    );
    c.execute(
        "document.querySelector('input[name=confirm_ended]').removeAttribute('required');",
        vec![],
    )
    .await
    .unwrap();
    click(&c, Locator::Css("button[value=apply]")).await;
    let body = text(&c).await;
    assert!(
        body.contains("Rien n'a été appliqué : cochez la case"),
        "{body}"
    );
    // Typed in small letters, as a phone's keyboard does; the page says
    // whether the member is covered today, and why not.
    c.goto(&format!("{console}/members?number=sol-0009"))
        .await
        .unwrap();
    let body = text(&c).await;
    assert!(
        body.contains("TG-1009")
            && body.contains("01/12/2026")
            && body.contains("Couvert le 02/12/2026\noui (produit SOLIDARITE-ESSENTIEL)"),
        "{body}"
    );
    c.goto(&format!("{console}/members?number=SOL-0002"))
        .await
        .unwrap();
    let body = text(&c).await;
    assert!(
        body.contains("Couvert le 02/12/2026\nnon : cotisations non à jour à la date des soins"),
        "{body}"
    );
    c.goto(&format!("{console}/members?number=SOL-0009"))
        .await
        .unwrap();
    // Its ceilings today (the broker's clock: 2 December 2026), used and
    // left.
    assert!(
        body.contains("Plafonds au 02/12/2026 (SOLIDARITE-ESSENTIEL v1)")
            && body.contains("par an et par bénéficiaire")
            && body.contains("300 000 XOF")
            && body.contains("nombre d'actes par an · Maternité"),
        "{body}"
    );
    shot(&c, "14-adherent").await;

    // Opening balances, from the members page: a row for someone who is
    // not a member is named by its line, in French; corrected, checked,
    // applied; the member's ceiling starts from it.
    click(
        &c,
        Locator::LinkText("Déclarer les soldes d'ouverture (adhésion en cours d'année)"),
    )
    .await;
    assert_eq!(h1(&c).await, "Soldes d'ouverture");
    let opening = tmp.path().join("soldes.csv");
    let rows = "numero_adherent;plafond;categorie;annee;montant;actes\r\nSOL-0009;beneficiaire;;2026;40 000;\r\n";
    std::fs::write(
        &opening,
        format!("{rows}SOL-0099;beneficiaire;;2026;1000;\r\n"),
    )
    .unwrap();
    c.find(Locator::Css("input[type=file]"))
        .await
        .unwrap()
        .send_keys(opening.to_str().unwrap())
        .await
        .unwrap();
    click(&c, Locator::Css("button[value=check]")).await;
    let body = text(&c).await;
    assert!(
        body.contains("3 numero_adherent pas adhérent de cette mutuelle"),
        "{body}"
    );
    std::fs::write(&opening, rows).unwrap();
    c.find(Locator::Css("input[type=file]"))
        .await
        .unwrap()
        .send_keys(opening.to_str().unwrap())
        .await
        .unwrap();
    click(&c, Locator::Css("button[value=check]")).await;
    assert!(
        text(&c)
            .await
            .contains("Si vous appliquez : 1 solde fixé, 0 inchangé.")
    );
    shot(&c, "27-soldes-ouverture").await;
    click(&c, Locator::Css("button[value=apply]")).await;
    assert!(
        text(&c)
            .await
            .contains("Appliqué : 1 solde fixé, 0 inchangé.")
    );
    // A prior authorization the scheme asks for a dental prosthesis (the
    // dev product says it needs one): the clerk reads it, what is held in
    // all, and the member's ceilings hold it apart from what is used.
    let planned = tmp.path().join("accord.toml");
    std::fs::write(
        &planned,
        "scheme_id = \"CNSS\"\nclaim_id = \"AP-2026-001\"\nprovider_id = \"CHU-SYLVANUS-OLYMPIO\"\n\
         invoice_number = \"-\"\nbeneficiary_id = \"TG-1009\"\ndate_of_care = \"2026-12-10\"\ncurrency = \"XOF\"\n\n\
         [[lines]]\nact_code = \"DENT-PROTH\"\ncare_category = \"dental\"\nbilled = 150000\n\
         tariff_base = 100000\nscheme_share = 70000\n",
    )
    .unwrap();
    let out = cli(
        &dev,
        &data,
        &["claim", "authorize", planned.to_str().unwrap()],
    );
    assert!(
        out.contains("prior authorization CNSS/AP-2026-001: in force (amount held)"),
        "{out}"
    );
    c.goto(&format!("{console}/authorizations")).await.unwrap();
    assert_eq!(h1(&c).await, "Accords préalables");
    let body = text(&c).await;
    assert!(
        body.contains("SOL-0009")
            && body.contains("10/12/2026")
            // Valid 60 days from 10 December, and never past the year its
            // hold is on.
            && body.contains("31/12/2026")
            && body.contains("en vigueur (montant réservé)")
            && body.contains(
                "Engagé et en vigueur (sur les 200 accords les plus récents) : 5 000 XOF."
            ),
        "{body}"
    );
    shot(&c, "26-accords-prealables").await;
    c.goto(&format!("{console}/members?number=SOL-0009"))
        .await
        .unwrap();
    let body = text(&c).await;
    assert!(
        body.contains("Réservé (accords préalables)") && body.contains("5 000 XOF"),
        "{body}"
    );

    c.goto(&format!("{console}/members?number=SOL-0009"))
        .await
        .unwrap();
    let body = text(&c).await;
    assert!(
        body.contains("40 000 XOF") && body.contains("255 000 XOF"),
        "used 40,000, held 5,000, 255,000 left: {body}"
    );

    // CSRF: a form whose token was tampered with is refused.
    c.execute(
        "document.querySelectorAll('input[name=csrf]').forEach(i => i.value = 'forged');",
        vec![],
    )
    .await
    .unwrap();
    click(&c, Locator::Css("header form[action='/sign-out'] button")).await;
    assert!(
        text(&c)
            .await
            .contains("Le formulaire a expiré. Rechargez la page et recommencez.")
    );
    // Still signed in: the forged sign-out did nothing.
    c.goto(&console).await.unwrap();
    assert_eq!(h1(&c).await, "Tableau de bord");

    // An operator (password and second factor) ends the clerk's sessions.
    let ops = browser(&driver, &tmp.path().join("profile-ops"), 1280, 900).await;
    // The code an authenticator app shows, from the secret the banner gives.
    let secret = dev.banner_line("given the TOTP secret ");
    let secret = secret.rsplit(' ').next().unwrap().trim_end_matches(')');
    // The app's clock agrees with the broker's.
    let code = passerelle_broker::service::users::totp_code(secret, dev.now_ms()).unwrap();
    sign_in(&ops, &console, "ops", "demo-passerelle", "").await;
    assert!(
        text(&ops)
            .await
            .contains("Identifiant, mot de passe ou code incorrect."),
        "without its code, the right password is refused like a wrong one"
    );
    sign_in(&ops, &console, "ops", "demo-passerelle", &code).await;
    assert_eq!(h1(&ops).await, "Tableau de bord");
    assert!(
        text(&ops)
            .await
            .contains("Demandes en attente par mutuelle")
    );
    shot(&ops, "08-operateur").await;
    // A claim's audit trail: the clerk's refused attempt is in it.
    ops.goto(&format!("{console}/claims/CNSS/CNSS-2026-000999"))
        .await
        .unwrap();
    let body = text(&ops).await;
    assert!(
        body.contains("Journal d'audit") && body.contains("mutuelle:MUT-SOLIDARITE/user:agent"),
        "{body}"
    );
    shot(&ops, "15-journal").await;
    click(&ops, Locator::LinkText("Partenaires")).await;
    assert!(text(&ops).await.contains("MUT-IMIS"));
    shot(&ops, "09-partenaires").await;
    // Certificates and CRLs with their end of validity (the dev ones: the
    // broker's for 825 days, its CA for ten years).
    click(&ops, Locator::LinkText("Certificats")).await;
    let body = text(&ops).await;
    assert!(
        body.contains("certificat du broker")
            && body.contains("Rien à renouveler")
            && body.contains("valide"),
        "{body}"
    );
    shot(&ops, "22-certificats").await;
    click(&ops, Locator::LinkText("Utilisateurs")).await;
    shot(&ops, "10-utilisateurs").await;
    // A new clerk's account from the page: its temporary password is shown
    // once, and it signs in.
    ops.find(Locator::Css("input[name=login]"))
        .await
        .unwrap()
        .send_keys("kossi")
        .await
        .unwrap();
    ops.find(Locator::Css("input[name=name]"))
        .await
        .unwrap()
        .send_keys("Kossi Agbo")
        .await
        .unwrap();
    ops.find(Locator::Css("input[name=scope]"))
        .await
        .unwrap()
        .send_keys("MUT-SOLIDARITE")
        .await
        .unwrap();
    click(&ops, Locator::XPath("//button[normalize-space()='Créer']")).await;
    assert_eq!(h1(&ops).await, "Compte créé");
    let password = ops
        .find(Locator::XPath(
            "//dt[text()='Mot de passe provisoire']/following-sibling::dd[1]",
        ))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let kossi = browser(&driver, &tmp.path().join("profile-kossi"), 1280, 900).await;
    sign_in(&kossi, &console, "kossi", &password, "").await;
    assert!(
        text(&kossi)
            .await
            .contains("Session de Kossi Agbo (agent de mutuelle)")
    );
    kossi.close().await.unwrap();
    ops.goto(&format!("{console}/users")).await.unwrap();
    click(
        &ops,
        Locator::XPath("//button[normalize-space()='Fermer ses sessions : agent']"),
    )
    .await;
    assert_eq!(h1(&ops).await, "Utilisateurs");
    assert!(
        text(&ops).await.contains("Sessions fermées."),
        "a notice says what was done"
    );
    // The clerk's next click finds the session gone.
    c.goto(&format!("{console}/claims")).await.unwrap();
    assert!(c.current_url().await.unwrap().contains("/sign-in"));
    assert!(
        text(&c)
            .await
            .contains("Votre session a pris fin (expirée, fermée par un opérateur ou après une déconnexion). Connectez-vous à nouveau.")
    );

    // The page-weight budget: under 100 KB on a first load, under 20 KB
    // once the stylesheet is cached.
    assert!(first_load < 100 * 1024, "first load {first_load} bytes");
    assert!(dashboard < 20 * 1024, "later page {dashboard} bytes");

    // On a 360-pixel-wide phone: nothing wider than the screen but the
    // tables, which scroll in their own box.
    let phone = browser(&driver, &tmp.path().join("profile-phone"), 360, 740).await;
    sign_in(&phone, &console, "gestion", "demo-passerelle", "").await;
    phone
        .goto(&format!("{console}/claims/CNSS/CNSS-2026-000123"))
        .await
        .unwrap();
    let width = phone
        .execute(
            "const wide = [...document.querySelectorAll('body *')]\
               .filter(e => !e.closest('.scroll') && e.getBoundingClientRect().right > window.innerWidth)\
               .map(e => e.tagName + '.' + e.className);\
             return [window.innerWidth, document.documentElement.scrollWidth, wide];",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        width[0].as_u64().unwrap() <= 360 && width[1] == width[0],
        "viewport, page width, wider elements: {width}"
    );
    shot(&phone, "11-demande-telephone").await;

    // A federation's manager checks a file for one mutuelle, switches to
    // another (as in a second tab), then clicks Apply: refused, nothing is
    // imported into the other mutuelle.
    let fed = browser(&driver, &tmp.path().join("profile-fed"), 1280, 900).await;
    sign_in(&fed, &console, "federation", "demo-passerelle", "").await;
    let body = text(&fed).await;
    assert!(
        body.contains("Total des mutuelles de la fédération") && body.contains("MUT-ENSEIGNANTS"),
        "{body}"
    );
    shot(&fed, "16-federation").await;
    fed.goto(&format!("{console}/roster")).await.unwrap();
    fed.find(Locator::Css("input[type=file]"))
        .await
        .unwrap()
        .send_keys(good_path.to_str().unwrap())
        .await
        .unwrap();
    click(&fed, Locator::Css("button[value=check]")).await;
    assert!(text(&fed).await.contains("Si vous appliquez"));
    fed.execute(
        "const f = new FormData(); f.append('csrf', document.querySelector('input[name=csrf]').value);\
         f.append('mutuelle', 'MUT-ENSEIGNANTS');\
         return fetch('/mutuelle', {method: 'POST', body: new URLSearchParams(f)}).then(r => r.status);",
        vec![],
    )
    .await
    .unwrap();
    click(&fed, Locator::Css("button[value=apply]")).await;
    assert!(
        text(&fed)
            .await
            .contains("Le fichier vérifié n'est plus en attente")
    );

    // Scheme staff: the partners' health, read only (no pause or resume),
    // and no certificates page.
    let cnss = browser(&driver, &tmp.path().join("profile-cnss"), 1280, 900).await;
    sign_in(&cnss, &console, "cnss", "demo-passerelle", "").await;
    // Its dashboard: claims waiting per mutuelle and the scheme's claims
    // per day of care, as charts.
    let charts = cnss
        .execute("return document.querySelectorAll('svg').length;", vec![])
        .await
        .unwrap();
    assert_eq!(charts.as_u64(), Some(2), "two charts");
    shot(&cnss, "24-regime-tableau-de-bord").await;
    click(&cnss, Locator::LinkText("Partenaires")).await;
    let body = text(&cnss).await;
    assert!(
        body.contains("MUT-IMIS") && body.contains("MUT-SOLIDARITE"),
        "{body}"
    );
    // When each last answered, beside its last error.
    assert!(
        body.contains("Dernier succès") && body.contains("Dernière erreur"),
        "{body}"
    );
    assert!(
        cnss.find(Locator::Css("form[action^='/partners/']"))
            .await
            .is_err(),
        "no pause or resume for scheme staff"
    );
    shot(&cnss, "23-regime-partenaires").await;
    cnss.goto(&format!("{console}/certificates")).await.unwrap();
    assert_eq!(h1(&cnss).await, "Erreur 403");

    for b in [c, ops, phone, fed, cnss] {
        b.close().await.unwrap();
    }
    dev.kill();
}
