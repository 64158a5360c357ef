//! The little of WebDriver (W3C) the console's browser test needs, as JSON
//! over plain HTTP to chromedriver on loopback: sessions, navigation,
//! elements (find, click, type, text), scripts and screenshots.

#![allow(dead_code)]

use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{Client as Http, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How an element is found.
pub enum Locator<'a> {
    Css(&'a str),
    LinkText(&'a str),
    XPath(&'a str),
}

impl Locator<'_> {
    fn json(&self) -> Value {
        match self {
            Locator::Css(v) => json!({"using": "css selector", "value": v}),
            Locator::LinkText(v) => json!({"using": "link text", "value": v}),
            Locator::XPath(v) => json!({"using": "xpath", "value": v}),
        }
    }
}

/// One browser session.
#[derive(Clone)]
pub struct Client {
    http: Http<HttpConnector, Full<bytes::Bytes>>,
    base: String,
}

pub struct Element {
    client: Client,
    id: String,
}

async fn call(
    http: &Http<HttpConnector, Full<bytes::Bytes>>,
    method: &str,
    url: &str,
    body: Option<Value>,
) -> Result<Value, String> {
    let req = hyper::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .body(Full::from(
            body.map(|b| b.to_string()).unwrap_or_default().into_bytes(),
        ))
        .map_err(|e| e.to_string())?;
    let res = http.request(req).await.map_err(|e| e.to_string())?;
    let status = res.status();
    let bytes = res
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{method} {url}: {status}: {}", v["value"]));
    }
    Ok(v["value"].clone())
}

impl Client {
    /// A new session with these capabilities (`alwaysMatch`).
    pub async fn connect(driver: &str, capabilities: Value) -> Result<Client, String> {
        let http = Http::builder(TokioExecutor::new()).build_http();
        let v = call(
            &http,
            "POST",
            &format!("{driver}/session"),
            Some(json!({"capabilities": {"alwaysMatch": capabilities}})),
        )
        .await?;
        let id = v["sessionId"].as_str().ok_or("no session id")?;
        Ok(Client {
            http,
            base: format!("{driver}/session/{id}"),
        })
    }

    async fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        call(&self.http, method, &format!("{}{path}", self.base), body).await
    }

    /// Navigates and waits for the page to load.
    pub async fn goto(&self, url: &str) -> Result<(), String> {
        self.cmd("POST", "/url", Some(json!({ "url": url })))
            .await
            .map(|_| ())
    }

    pub async fn current_url(&self) -> Result<String, String> {
        Ok(self
            .cmd("GET", "/url", None)
            .await?
            .as_str()
            .unwrap_or("")
            .to_string())
    }

    pub async fn find(&self, at: Locator<'_>) -> Result<Element, String> {
        let v = self.cmd("POST", "/element", Some(at.json())).await?;
        let id = v[ELEMENT].as_str().ok_or("no element id")?.to_string();
        Ok(Element {
            client: self.clone(),
            id,
        })
    }

    /// Runs a script in the page (`return` gives its value; a promise is
    /// awaited).
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Result<Value, String> {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// The viewport as a PNG.
    pub async fn screenshot(&self) -> Result<Vec<u8>, String> {
        let v = self.cmd("GET", "/screenshot", None).await?;
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or(""))
            .map_err(|e| e.to_string())
    }

    pub async fn close(self) -> Result<(), String> {
        self.cmd("DELETE", "", None).await.map(|_| ())
    }
}

impl Element {
    pub async fn click(&self) -> Result<(), String> {
        self.client
            .cmd(
                "POST",
                &format!("/element/{}/click", self.id),
                Some(json!({})),
            )
            .await
            .map(|_| ())
    }

    pub async fn send_keys(&self, text: &str) -> Result<(), String> {
        self.client
            .cmd(
                "POST",
                &format!("/element/{}/value", self.id),
                Some(json!({ "text": text })),
            )
            .await
            .map(|_| ())
    }

    /// Its rendered text.
    pub async fn text(&self) -> Result<String, String> {
        Ok(self
            .client
            .cmd("GET", &format!("/element/{}/text", self.id), None)
            .await?
            .as_str()
            .unwrap_or("")
            .to_string())
    }
}
