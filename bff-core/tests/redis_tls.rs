//! `rediss://` with a CA of the deployment's own: a local `redis-server`
//! serving TLS with a certificate that a test CA signed (made with the
//! `openssl` command). The connection holds with that CA, and fails without
//! it or with another CA: the server's certificate is verified.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bff_core::redis_client::{RedisConnection, RedisOptions};

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success(), "openssl {args:?}");
}

/// A CA named `name` in `dir` (`name.crt`, `name.key`).
fn ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
        ],
    );
}

struct TlsRedis {
    port: u16,
    child: Child,
    dir: std::path::PathBuf,
}

impl TlsRedis {
    /// A TLS-only server whose certificate (for 127.0.0.1) the CA `ca` signed.
    fn start() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "bff-redis-tls-{}-{}",
            std::process::id(),
            uuid::Uuid::now_v7().simple()
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        ca(&dir, "ca");
        ca(&dir, "other");
        openssl(
            &dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ],
        );
        std::fs::write(dir.join("ext"), "subjectAltName=IP:127.0.0.1\n").expect("ext");
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "1",
                "-extfile",
                "ext",
                "-out",
                "server.crt",
            ],
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--tls-cert-file",
                "server.crt",
                "--tls-key-file",
                "server.key",
                "--tls-ca-cert-file",
                "ca.crt",
                "--tls-auth-clients",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server listens");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { port, child, dir }
    }

    fn pem(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(format!("{name}.crt"))).expect("pem")
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn options(ca_pem: Option<Vec<u8>>, cluster: bool) -> RedisOptions {
    RedisOptions {
        cluster,
        connect_timeout: Duration::from_secs(2),
        retries: 0,
        ca_pem,
        ..RedisOptions::default()
    }
}

#[tokio::test]
async fn rediss_holds_with_the_deployments_ca_and_fails_without_it() {
    let server = TlsRedis::start();
    let url = format!("rediss://127.0.0.1:{}", server.port);

    let mut conn = RedisConnection::connect(&url, &options(Some(server.pem("ca")), false))
        .await
        .expect("TLS with the CA");
    let () = redis::cmd("SET")
        .arg("tls-test")
        .arg("over TLS")
        .query_async(&mut conn)
        .await
        .expect("set");
    let value: String = redis::cmd("GET")
        .arg("tls-test")
        .query_async(&mut conn)
        .await
        .expect("get");
    assert_eq!(value, "over TLS");

    for (what, ca) in [
        ("another CA", Some(server.pem("other"))),
        ("the system's roots", None),
    ] {
        let refused = RedisConnection::connect(&url, &options(ca, false)).await;
        assert!(refused.is_err(), "{what} does not vouch for the server");
    }
    // Plain text to a TLS port is no connection either.
    let plain = format!("redis://127.0.0.1:{}", server.port);
    assert!(
        tokio::time::timeout(
            Duration::from_secs(5),
            RedisConnection::connect(&plain, &options(None, false))
        )
        .await
        .map_or(true, |result| result.is_err())
    );
}
