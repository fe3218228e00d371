//! A small keep-alive HTTP/1.1 client for the signed Pusher HTTP API: one request at a time per
//! connection, bodies read by `Content-Length` or chunked encoding. Kept tiny so the publisher
//! costs little CPU next to the server it measures.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use chorus_protocol::sign;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::Target;

pub struct HttpConn {
    stream: BufReader<TcpStream>,
    target: Target,
    /// The server said `Connection: close` (Sockudo does after some replies): reconnect first.
    closed: bool,
    host: String,
    app_id: String,
    key: String,
    secret: String,
    req: Vec<u8>,
}

const CLOSED_BEFORE_REPLY: &str = "HTTP connection closed before the reply";

pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

impl HttpConn {
    async fn open(t: &Target) -> Result<BufReader<TcpStream>> {
        let stream = TcpStream::connect((t.host.as_str(), t.port))
            .await
            .with_context(|| format!("HTTP connect to {}:{}", t.host, t.port))?;
        stream.set_nodelay(true)?;
        Ok(BufReader::with_capacity(16 * 1024, stream))
    }

    pub async fn connect(t: &Target) -> Result<Self> {
        Ok(Self {
            stream: Self::open(t).await?,
            target: t.clone(),
            closed: false,
            host: format!("{}:{}", t.host, t.port),
            app_id: t.app_id.clone(),
            key: t.key.clone(),
            secret: t.secret.clone(),
            req: Vec::with_capacity(4096),
        })
    }

    /// Signs and sends `method path` with `body` (JSON), returns the reply.
    pub async fn signed(&mut self, method: &str, path: &str, body: &[u8]) -> Result<Reply> {
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            .to_string();
        let md5 = sign::md5_hex(body);
        let mut params: Vec<(&str, &str)> = vec![
            ("auth_key", &self.key),
            ("auth_timestamp", &ts),
            ("auth_version", "1.0"),
        ];
        if !body.is_empty() {
            params.push(("body_md5", &md5));
        }
        let sig = sign::sign_api_request(&self.secret, method, path, params.iter().copied());
        let mut query = String::with_capacity(160);
        for (k, v) in &params {
            query.push_str(k);
            query.push('=');
            query.push_str(v);
            query.push('&');
        }
        query.push_str("auth_signature=");
        query.push_str(&sig);
        self.send(method, &format!("{path}?{query}"), body).await
    }

    /// `POST /apps/{id}/events` or `/batch_events` with a prepared JSON body.
    pub async fn publish(&mut self, batch: bool, body: &[u8]) -> Result<Reply> {
        let path = if batch {
            format!("/apps/{}/batch_events", self.app_id)
        } else {
            format!("/apps/{}/events", self.app_id)
        };
        self.signed("POST", &path, body).await
    }

    async fn send(&mut self, method: &str, target: &str, body: &[u8]) -> Result<Reply> {
        self.req.clear();
        self.req.extend_from_slice(
            format!(
                "{method} {target} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                self.host,
                body.len()
            )
            .as_bytes(),
        );
        self.req.extend_from_slice(body);
        if self.closed {
            self.stream = Self::open(&self.target).await?;
            self.closed = false;
        }
        match self.exchange().await {
            Ok(r) => Ok(r),
            // A keep-alive connection the server closed before reading the request: once more
            // on a fresh one.
            Err(e) if e.to_string() == CLOSED_BEFORE_REPLY => {
                self.stream = Self::open(&self.target).await?;
                self.exchange().await
            }
            Err(e) => Err(e),
        }
    }

    async fn exchange(&mut self) -> Result<Reply> {
        if self.stream.get_mut().write_all(&self.req).await.is_err() {
            bail!(CLOSED_BEFORE_REPLY);
        }
        self.read_reply().await
    }

    async fn read_reply(&mut self) -> Result<Reply> {
        let mut line = String::new();
        if self.stream.read_line(&mut line).await.unwrap_or(0) == 0 {
            bail!(CLOSED_BEFORE_REPLY);
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow!("bad status line {line:?}"))?;
        let mut length: Option<usize> = None;
        let mut chunked = false;
        loop {
            line.clear();
            if self.stream.read_line(&mut line).await? == 0 {
                bail!("HTTP connection closed in headers");
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                let v = v.trim();
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.parse().ok();
                } else if k.eq_ignore_ascii_case("connection") && v.eq_ignore_ascii_case("close") {
                    self.closed = true;
                } else if k.eq_ignore_ascii_case("transfer-encoding")
                    && v.eq_ignore_ascii_case("chunked")
                {
                    chunked = true;
                }
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.stream.read_line(&mut line).await?;
                let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                    .map_err(|_| anyhow!("bad chunk size {line:?}"))?;
                let start = body.len();
                body.resize(start + size, 0);
                self.stream.read_exact(&mut body[start..]).await?;
                line.clear();
                self.stream.read_line(&mut line).await?;
                if size == 0 {
                    break;
                }
            }
        } else if let Some(n) = length {
            body.resize(n, 0);
            self.stream.read_exact(&mut body).await?;
        }
        Ok(Reply { status, body })
    }
}
