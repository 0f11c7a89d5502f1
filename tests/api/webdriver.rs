//! Enough of the W3C WebDriver protocol (over plain HTTP to `chromedriver`) to drive a headless
//! Chromium through the dashboard: open a page, find and click elements, read the page and
//! its URL, take screenshots, and read the browser's console and network logs.

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The browser and its driver, when both are installed.
pub fn installed() -> Option<(String, String)> {
    let find = |names: &[&str]| {
        names
            .iter()
            .map(std::path::Path::new)
            .find(|p| p.exists())
            .map(|p| p.display().to_string())
    };
    let browser = std::env::var("TRIGGER_DOCTOR_CHROMIUM")
        .ok()
        .or_else(|| find(&["/usr/bin/chromium", "/usr/bin/chromium-browser"]))?;
    let driver = std::env::var("TRIGGER_DOCTOR_CHROMEDRIVER")
        .ok()
        .or_else(|| find(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]))?;
    Some((browser, driver))
}

/// A running `chromedriver` with one browser session; both end when dropped.
pub struct Browser {
    driver: Child,
    base: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

/// A found element's id.
pub struct Element(String);

impl Browser {
    pub async fn start(browser: &str, driver: &str) -> Browser {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let ready = http
                .get(format!("{base}/status"))
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success());
            if ready.is_some() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "chromedriver did not answer"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": browser,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            },
            "goog:loggingPrefs": {"browser": "ALL", "performance": "ALL"}
        }}});
        let mut me = Browser {
            driver: child,
            base,
            http,
            _profile: profile,
        };
        let answer = me.call("POST", "/session", Some(capabilities)).await;
        let id = answer["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {answer}"))
            .to_string();
        me.base = format!("{}/session/{id}", me.base);
        me
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let request = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body.unwrap_or_else(|| json!({}))),
        };
        let answer: Value = request
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .expect("chromedriver answers JSON");
        if let Some(error) = answer["value"]["error"].as_str() {
            panic!(
                "WebDriver {method} {path}: {error}: {}",
                answer["value"]["message"]
            );
        }
        answer.get("value").cloned().unwrap_or(answer)
    }

    pub async fn open(&self, url: &str) {
        self.call("POST", "/url", Some(json!({"url": url}))).await;
    }

    pub async fn url(&self) -> String {
        self.call("GET", "/url", None)
            .await
            .as_str()
            .unwrap()
            .to_string()
    }

    pub async fn source(&self) -> String {
        self.call("GET", "/source", None)
            .await
            .as_str()
            .unwrap()
            .to_string()
    }

    pub async fn find(&self, css: &str) -> Element {
        let found = self
            .call(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        Element(
            found[ELEMENT]
                .as_str()
                .unwrap_or_else(|| panic!("{css}: {found}"))
                .to_string(),
        )
    }

    pub async fn count(&self, css: &str) -> usize {
        self.call(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        )
        .await
        .as_array()
        .map_or(0, Vec::len)
    }

    pub async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.call("POST", &format!("/element/{}/click", e.0), None)
            .await;
    }

    /// Types `text` into the element (for a `<select>`: picks the option it names).
    pub async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.call(
            "POST",
            &format!("/element/{}/value", e.0),
            Some(json!({"text": text})),
        )
        .await;
    }

    pub async fn text(&self, css: &str) -> String {
        let e = self.find(css).await;
        self.call("GET", &format!("/element/{}/text", e.0), None)
            .await
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Saves a PNG of the window.
    pub async fn screenshot(&self, path: &std::path::Path) {
        let data = self.call("GET", "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap())
            .unwrap();
        std::fs::write(path, png).unwrap();
    }

    /// New entries of a log (`browser` or `performance`) since the last read.
    pub async fn log(&self, kind: &str) -> Vec<Value> {
        self.call("POST", "/se/log", Some(json!({"type": kind})))
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Console errors and failed requests since the last call (messages of level SEVERE,
    /// responses of 400 and above, requests that failed to load), and how many responses
    /// the browser received meanwhile (so an empty log is told from a clean one).
    pub async fn problems(&self) -> (Vec<String>, usize) {
        let mut responses = 0;
        let mut urls = std::collections::HashMap::new();
        let mut problems: Vec<String> = self
            .log("browser")
            .await
            .iter()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| format!("console: {}", e["message"]))
            .collect();
        for entry in self.log("performance").await {
            let Some(text) = entry["message"].as_str() else {
                continue;
            };
            let Ok(message) = serde_json::from_str::<Value>(text) else {
                continue;
            };
            let message = &message["message"];
            match message["method"].as_str() {
                Some("Network.requestWillBeSent") => {
                    let params = &message["params"];
                    urls.insert(
                        params["requestId"].to_string(),
                        params["request"]["url"].as_str().unwrap_or("").to_string(),
                    );
                }
                Some("Network.responseReceived") => {
                    responses += 1;
                    let response = &message["params"]["response"];
                    if response["status"].as_u64().unwrap_or(0) >= 400 {
                        problems.push(format!(
                            "request failed: {} {}",
                            response["status"], response["url"]
                        ));
                    }
                }
                Some("Network.loadingFailed") => {
                    let params = &message["params"];
                    let url = urls
                        .get(&params["requestId"].to_string())
                        .cloned()
                        .unwrap_or_default();
                    // The pages' own requests (the browser's background lookups of its
                    // vendor's hosts fail on a closed network and are none of the page's).
                    if params["canceled"] != true && url.starts_with("http://127.0.0.1") {
                        problems.push(format!(
                            "request failed to load: {url}: {}",
                            params["errorText"]
                        ));
                    }
                }
                _ => {}
            }
        }
        (problems, responses)
    }
}

impl Browser {
    /// Closes the browser, then the driver.
    pub async fn quit(self) {
        let _ = self.http.delete(&self.base).send().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
