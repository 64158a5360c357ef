//! The console's statement exports as a mutuelle's manager downloads them
//! (issue 16, item 3): HTTPS to a child broker's console, signed in as the
//! dev manager of the large mutuelle, each file read to its end while the
//! broker's peak RSS is watched. The same month as the export by pages
//! through `GetStatement`, so that both figures are of one statement.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::load::{peak_rss_kib, reset_peak_rss};

/// The dev broker's manager of MUT-SOLIDARITE, the large mutuelle
/// (`passerelle_broker::dev`'s demo accounts).
const MANAGER: &str = "gestion";

/// The lines a workbook from the console holds (an Excel sheet's rows less
/// the header and totals): past it, the console refuses the workbook.
const XLSX_MAX_LINES: u32 = 1_048_576 - 2;

/// One download: its size, when its first and last bytes came, and the
/// broker's peak RSS meanwhile.
pub struct Download {
    pub bytes: u64,
    /// Line ends read (a CSV's rows), and whether the file ends with a
    /// zip's end record (a workbook read whole): a body that ended early
    /// without an error must not count as a download.
    pub newlines: u64,
    pub zip_end: bool,
    pub first_byte_secs: f64,
    pub secs: f64,
    pub peak_mib: f64,
}

/// The statement's two exports, CSV then workbook, or why not. The
/// workbook is `None` when the console refused it as larger than a sheet
/// (1,048,571 lines), as it says it does.
pub struct ConsoleExports {
    pub csv: Result<Download, String>,
    pub xlsx: Result<Option<Download>, String>,
}

impl ConsoleExports {
    /// The report's line, for a statement of `lines` lines.
    pub fn line(&self, lines: u64) -> String {
        let one = |d: &Download| {
            format!(
                "{:.1} MiB, first byte after {:.2} s, whole in {:.2} s ({:.0} lines/s), the broker's peak {:.0} MiB = {:.2} x the 100 MiB limit",
                d.bytes as f64 / 1048576.0,
                d.first_byte_secs,
                d.secs,
                lines as f64 / d.secs.max(1e-9),
                d.peak_mib,
                d.peak_mib / 100.0
            )
        };
        format!(
            "statement from the console (HTTPS, signed in as {MANAGER}, its manager; a broker of its own): CSV {}; workbook {}",
            match &self.csv {
                Ok(d) => one(d),
                Err(e) => format!("failed: {e}"),
            },
            match &self.xlsx {
                Ok(Some(d)) => one(d),
                Ok(None) =>
                    "refused, more lines than a sheet holds (1,048,571), as the console says".into(),
                Err(e) => format!("failed: {e}"),
            }
        )
    }

    pub fn json(&self) -> serde_json::Value {
        let one = |d: &Download| {
            serde_json::json!({
                "bytes": d.bytes,
                "first_byte_secs": (d.first_byte_secs * 100.0).round() / 100.0,
                "secs": (d.secs * 100.0).round() / 100.0,
                "broker_peak_rss_mib": d.peak_mib.round(),
            })
        };
        serde_json::json!({
            "csv": self.csv.as_ref().map(one).map_err(|e| serde_json::json!({"error": e})).unwrap_or_else(|e| e),
            "xlsx": match &self.xlsx {
                Ok(Some(d)) => one(d),
                Ok(None) => serde_json::json!({"refused_larger_than_a_sheet": true}),
                Err(e) => serde_json::json!({"error": e}),
            },
        })
    }
}

/// Signs in to the console at `addr` (its certificate from the dev CA in
/// `certs`) and downloads period `number`'s statement of `mutuelle` as
/// both files, the broker (`broker_pid`) watched through each.
pub async fn export_statement(
    addr: SocketAddr,
    certs: &Path,
    mutuelle: &str,
    number: u32,
    lines: u64,
    broker_pid: u32,
) -> ConsoleExports {
    let session = match Session::sign_in(addr, certs).await {
        Ok(s) => s,
        Err(e) => {
            return ConsoleExports {
                csv: Err(e.clone()),
                xlsx: Err(e),
            };
        }
    };
    let path = |ext: &str| format!("/periods/CNSS/{mutuelle}/{number}/statement.{ext}");
    let csv = session
        .download(&path("csv"), broker_pid)
        .await
        .and_then(|d| d.ok_or_else(|| "refused (400)".to_string()))
        .and_then(|d| {
            // The header and every line (recoveries would add more).
            if d.newlines > lines {
                Ok(d)
            } else {
                Err(format!(
                    "{} rows for a statement of {lines} lines and its header",
                    d.newlines
                ))
            }
        });
    let xlsx = match session.download(&path("xlsx"), broker_pid).await {
        Ok(Some(d)) if !d.zip_end => Err("the workbook ends before its zip's end record".into()),
        // Refused as larger than a sheet: only when it is.
        Ok(None) if lines <= u64::from(XLSX_MAX_LINES) => Err(format!(
            "refused as larger than a sheet, with {lines} lines"
        )),
        other => other,
    };
    ConsoleExports { csv, xlsx }
}

/// A signed-in person's cookies, and how to reach the console.
struct Session {
    addr: SocketAddr,
    tls: TlsConnector,
    cookies: Vec<(String, String)>,
}

impl Session {
    async fn sign_in(addr: SocketAddr, certs: &Path) -> Result<Session, String> {
        let ca = std::fs::read(certs.join("ca.crt")).map_err(|e| format!("the dev CA: {e}"))?;
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pemfile::certs(&mut ca.as_slice()) {
            roots
                .add(c.map_err(|e| format!("the dev CA: {e}"))?)
                .map_err(|e| format!("the dev CA: {e}"))?;
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut s = Session {
            addr,
            tls: TlsConnector::from(Arc::new(config)),
            cookies: Vec::new(),
        };
        let (status, page) = s.text(Request::get("/sign-in"), Vec::new()).await?;
        if status != StatusCode::OK {
            return Err(format!("the sign-in page: {status}"));
        }
        let csrf = page
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .ok_or("the sign-in page has no CSRF token")?
            .to_string();
        // The token is base64url; the password has no character to escape.
        let form = format!(
            "csrf={csrf}&login={MANAGER}&password={}&code=",
            passerelle_broker::dev::DEMO_PASSWORD
        );
        let (status, _) = s
            .text(
                Request::post("/sign-in")
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded"),
                form.into_bytes(),
            )
            .await?;
        if status != StatusCode::SEE_OTHER {
            return Err(format!("signing in as {MANAGER}: {status}"));
        }
        Ok(s)
    }

    /// One request on a connection of its own; the cookies it sets kept.
    async fn send(
        &mut self,
        req: hyper::http::request::Builder,
        body: Vec<u8>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, String> {
        let tcp = TcpStream::connect(self.addr)
            .await
            .map_err(|e| format!("the console: {e}"))?;
        let name = rustls::pki_types::ServerName::from(self.addr.ip());
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| format!("the console's TLS: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| format!("the console: {e}"))?;
        tokio::spawn(conn);
        let cookies = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let req = req
            .header(header::HOST, self.addr.to_string())
            .header(header::COOKIE, cookies)
            .header(header::ACCEPT_LANGUAGE, "fr")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let r = sender
            .send_request(req)
            .await
            .map_err(|e| format!("the console: {e}"))?;
        for v in r.headers().get_all(header::SET_COOKIE) {
            let Some((k, v)) = v
                .to_str()
                .ok()
                .and_then(|c| c.split(';').next())
                .and_then(|kv| kv.split_once('='))
            else {
                continue;
            };
            self.cookies.retain(|(name, _)| name != k);
            self.cookies.push((k.to_string(), v.to_string()));
        }
        Ok(r)
    }

    /// A request's status and whole body as text.
    async fn text(
        &mut self,
        req: hyper::http::request::Builder,
        body: Vec<u8>,
    ) -> Result<(StatusCode, String), String> {
        let r = self.send(req, body).await?;
        let status = r.status();
        Ok((status, whole_text(r).await?))
    }

    /// A file read to its end, counted, not kept; `None` when refused as
    /// too large (400, the page saying to export it as CSV).
    async fn download(&self, path: &str, broker_pid: u32) -> Result<Option<Download>, String> {
        let mut me = Session {
            addr: self.addr,
            tls: self.tls.clone(),
            cookies: self.cookies.clone(),
        };
        reset_peak_rss(Some(broker_pid));
        let t0 = Instant::now();
        let r = me.send(Request::get(path), Vec::new()).await?;
        if r.status() == StatusCode::BAD_REQUEST {
            if whole_text(r).await?.contains("CSV") {
                return Ok(None);
            }
            return Err(format!("{path}: 400 Bad Request"));
        }
        if r.status() != StatusCode::OK {
            return Err(format!("{path}: {}", r.status()));
        }
        let (mut body, mut bytes, mut first) = (r.into_body(), 0u64, None);
        let (mut newlines, mut tail) = (0u64, Vec::new());
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("{path}: cut short: {e}"))?;
            if let Some(data) = frame.data_ref() {
                first.get_or_insert_with(|| t0.elapsed().as_secs_f64());
                bytes += data.len() as u64;
                newlines += data.iter().filter(|b| **b == b'\n').count() as u64;
                tail.extend_from_slice(data);
                let keep = tail.len().saturating_sub(64);
                tail.drain(..keep);
            }
        }
        // The end of central directory record: 22 bytes, at the end when
        // the zip has no comment.
        let zip_end = tail.len() >= 22 && tail[tail.len() - 22..].starts_with(b"PK\x05\x06");
        Ok(Some(Download {
            bytes,
            newlines,
            zip_end,
            first_byte_secs: first.unwrap_or_default(),
            secs: t0.elapsed().as_secs_f64(),
            peak_mib: peak_rss_kib(Some(broker_pid)) as f64 / 1024.0,
        }))
    }
}

/// An answer's whole body, as text.
async fn whole_text(r: hyper::Response<hyper::body::Incoming>) -> Result<String, String> {
    let body = r
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("the console: {e}"))?
        .to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}
