//! A TCP proxy in the test, between a broker and PostgreSQL, that can cut
//! every connection (and refuse new ones) and then let them through again:
//! a database outage without touching the shared server.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct Proxy {
    pub addr: SocketAddr,
    cut: watch::Sender<bool>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
    _accept: JoinHandle<()>,
}

impl Proxy {
    /// Listens on 127.0.0.1:0 and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, cut_rx) = watch::channel(false);
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let l2 = links.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut down, _)) = listener.accept().await {
                if *cut_rx.borrow() {
                    drop(down); // refused: closed at once
                    continue;
                }
                let link = tokio::spawn(async move {
                    if let Ok(mut up) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                });
                l2.lock().unwrap().push(link);
            }
        });
        Proxy {
            addr,
            cut,
            links,
            _accept: accept,
        }
    }

    /// Closes every open connection and refuses new ones.
    pub fn cut(&self) {
        self.cut.send_replace(true);
        for l in self.links.lock().unwrap().drain(..) {
            l.abort();
        }
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.cut.send_replace(false);
    }
}

/// Terminates PostgreSQL's TLS in the test: answers the client's SSLRequest
/// with 'S', does the TLS handshake with `tls`, and forwards the plaintext to
/// the real server (which thus sees an ordinary connection).
pub struct PgTlsTerminator {
    pub addr: SocketAddr,
    pub handshakes: Arc<std::sync::atomic::AtomicUsize>,
    _accept: JoinHandle<()>,
}

impl PgTlsTerminator {
    pub async fn start(upstream: SocketAddr, tls: Arc<rustls::ServerConfig>) -> PgTlsTerminator {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let handshakes: Arc<std::sync::atomic::AtomicUsize> = Arc::default();
        let h2 = handshakes.clone();
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        let accept = tokio::spawn(async move {
            while let Ok((mut down, _)) = listener.accept().await {
                let (acceptor, handshakes) = (acceptor.clone(), h2.clone());
                tokio::spawn(async move {
                    let mut req = [0u8; 8];
                    if down.read_exact(&mut req).await.is_err() {
                        return;
                    }
                    // SSLRequest: length 8, code 80877103.
                    if req != [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]
                        || down.write_all(b"S").await.is_err()
                    {
                        return;
                    }
                    let Ok(mut tls) = acceptor.accept(down).await else {
                        return;
                    };
                    handshakes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if let Ok(mut up) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                    }
                });
            }
        });
        PgTlsTerminator {
            addr,
            handshakes,
            _accept: accept,
        }
    }
}
