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
