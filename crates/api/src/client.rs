//! A small blocking HTTP/1.1 client for the daemon's API.
//!
//! One request per connection (`Connection: close`), over the Unix socket or over TCP with a
//! bearer token. Responses are read with `Content-Length`, chunked transfer encoding (used by
//! the streaming routes) or until EOF. Non-2xx responses are decoded from the API's error body
//! into [`ClientError::Api`], so the CLI can print the daemon's own message.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::types::{ErrorBody, ErrorCode};

/// Where the daemon listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    Tcp { addr: String, token: String },
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "{}", p.display()),
            Endpoint::Tcp { addr, .. } => write!(f, "http://{addr}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answers at the endpoint: the daemon is not running.
    #[error("cannot reach the Aurelia daemon at {endpoint}: {source}")]
    Unreachable {
        endpoint: String,
        #[source]
        source: io::Error,
    },
    /// The daemon answered with an error body.
    #[error("{message}")]
    Api {
        status: u16,
        code: ErrorCode,
        message: String,
    },
    #[error("talking to the daemon: {0}")]
    Io(#[from] io::Error),
    #[error("unexpected reply from the daemon: {0}")]
    Protocol(String),
}

/// An API client.
#[derive(Debug, Clone)]
pub struct Client {
    endpoint: Endpoint,
    timeout: Option<Duration>,
}

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// A response body being read.
pub struct Body {
    reader: BufReader<Box<dyn Stream>>,
    mode: Mode,
}

enum Mode {
    Length(u64),
    Chunked { left: u64, done: bool },
    Eof,
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.mode {
            Mode::Length(left) => {
                if *left == 0 {
                    return Ok(0);
                }
                let max = buf.len().min(*left as usize);
                let n = self.reader.read(&mut buf[..max])?;
                *left -= n as u64;
                Ok(n)
            }
            Mode::Eof => self.reader.read(buf),
            Mode::Chunked { left, done } => {
                if *done {
                    return Ok(0);
                }
                if *left == 0 {
                    let mut line = String::new();
                    self.reader.read_line(&mut line)?;
                    if line.is_empty() {
                        return Ok(0);
                    }
                    let size = line.trim().split(';').next().unwrap_or("");
                    let size = u64::from_str_radix(size, 16).map_err(|_| {
                        io::Error::new(io::ErrorKind::InvalidData, "bad chunk size")
                    })?;
                    if size == 0 {
                        *done = true;
                        return Ok(0);
                    }
                    *left = size;
                }
                let max = buf.len().min(*left as usize);
                let n = self.reader.read(&mut buf[..max])?;
                if n == 0 {
                    return Ok(0);
                }
                *left -= n as u64;
                if *left == 0 {
                    let mut crlf = [0u8; 2];
                    self.reader.read_exact(&mut crlf)?;
                }
                Ok(n)
            }
        }
    }
}

impl Client {
    pub fn new(endpoint: Endpoint) -> Client {
        Client {
            endpoint,
            timeout: Some(Duration::from_secs(30)),
        }
    }

    /// Read timeout for each response (None: wait forever, for streams).
    pub fn with_timeout(mut self, t: Option<Duration>) -> Client {
        self.timeout = t;
        self
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn connect(&self) -> Result<Box<dyn Stream>, ClientError> {
        let unreachable = |source| ClientError::Unreachable {
            endpoint: self.endpoint.to_string(),
            source,
        };
        Ok(match &self.endpoint {
            Endpoint::Unix(p) => {
                let s = UnixStream::connect(p).map_err(unreachable)?;
                s.set_read_timeout(self.timeout)?;
                Box::new(s)
            }
            Endpoint::Tcp { addr, .. } => {
                let s = std::net::TcpStream::connect(addr).map_err(unreachable)?;
                s.set_read_timeout(self.timeout)?;
                s.set_nodelay(true)?;
                Box::new(s)
            }
        })
    }

    /// Sends a request and returns the status and the body reader.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<(u16, Body), ClientError> {
        let mut stream = self.connect()?;
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: aurelia\r\nConnection: close\r\n");
        if let Endpoint::Tcp { token, .. } = &self.endpoint {
            req.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        match body {
            Some(b) => req.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                b.len()
            )),
            None => req.push_str(if method == "GET" {
                "\r\n"
            } else {
                "Content-Length: 0\r\n\r\n"
            }),
        }
        let mut out = req.into_bytes();
        if let Some(b) = body {
            out.extend_from_slice(b);
        }
        stream.write_all(&out)?;
        stream.flush()?;
        let mut reader = BufReader::new(stream);
        let mut status_line = String::new();
        reader.read_line(&mut status_line)?;
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| ClientError::Protocol(format!("bad status line {status_line:?}")))?;
        let mut mode = Mode::Eof;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                break;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                let k = k.trim().to_ascii_lowercase();
                let v = v.trim();
                if k == "content-length" {
                    mode =
                        Mode::Length(v.parse().map_err(|_| {
                            ClientError::Protocol(format!("bad content-length {v:?}"))
                        })?);
                } else if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
                    mode = Mode::Chunked {
                        left: 0,
                        done: false,
                    };
                }
            }
        }
        Ok((status, Body { reader, mode }))
    }

    fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<T, ClientError> {
        let (status, mut body) = self.send(method, path, body)?;
        let mut bytes = Vec::new();
        body.read_to_end(&mut bytes)?;
        if !(200..300).contains(&status) {
            return Err(api_error(status, &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            ClientError::Protocol(format!(
                "{e}: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            ))
        })
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call("GET", path, None)
    }

    pub fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let bytes = match body {
            Some(b) => {
                Some(serde_json::to_vec(b).map_err(|e| ClientError::Protocol(e.to_string()))?)
            }
            None => None,
        };
        self.call("POST", path, bytes.as_deref())
    }

    /// Opens a streaming route and returns its newline-delimited items as they arrive.
    pub fn stream<T: DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<impl Iterator<Item = Result<T, ClientError>> + use<T>, ClientError> {
        let (status, mut body) = self.send("GET", path, None)?;
        if !(200..300).contains(&status) {
            let mut bytes = Vec::new();
            body.read_to_end(&mut bytes)?;
            return Err(api_error(status, &bytes));
        }
        let lines = BufReader::new(body).lines();
        Ok(lines.filter_map(|l| match l {
            Ok(l) if l.trim().is_empty() => None,
            Ok(l) => Some(
                serde_json::from_str(&l).map_err(|e| ClientError::Protocol(format!("{e}: {l}"))),
            ),
            Err(e) => Some(Err(ClientError::Io(e))),
        }))
    }
}

fn api_error(status: u16, bytes: &[u8]) -> ClientError {
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(b) => ClientError::Api {
            status,
            code: b.error.code,
            message: b.error.message,
        },
        Err(_) => ClientError::Protocol(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
        )),
    }
}

/// URL-encodes a query or path component.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
