//! Test support: a real nginx serving files behind `secure_link`, or behind whatever
//! `server` directives a test gives it (test crate only: it must never ship in a Lambda).
//!
//! [`Nginx::start`] writes a config into a fresh temp dir, starts
//! nginx in the foreground (`daemon off; master_process off;`, so the process
//! we spawn is the one serving and killing it leaves nothing behind) on
//! `127.0.0.1:<free port>`, and waits until the port accepts connections.
//! Everything nginx writes (pid, logs, temp paths) stays in that dir, so it
//! runs as root or not without touching `/etc/nginx` or `/var/lib/nginx`.
//! Dropping the value kills nginx, waits for it, and removes the dir.
//!
//! The nginx binary is looked up in `$TOLLGATE_NGINX_BIN`, then
//! `/usr/sbin/nginx`, then `$PATH`. It needs `ngx_http_secure_link_module` and
//! `ngx_http_auth_request_module` (Debian's `nginx` package has both).

use std::fs;
use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long to wait for nginx to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts with a new port when nginx loses a race for the one we picked.
const PORT_ATTEMPTS: usize = 5;

/// A running nginx: [`start`](Nginx::start) protects `location /s/` with `secure_link`,
/// [`start_server`](Nginx::start_server) runs a test's own `server` directives.
#[derive(Debug)]
pub struct Nginx {
    child: Option<Child>,
    dir: PathBuf,
    port: u16,
}

impl Nginx {
    /// Finds the nginx binary, or `None` if it is not installed.
    pub fn find_binary() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("TOLLGATE_NGINX_BIN") {
            let p = PathBuf::from(p);
            return p.is_file().then_some(p);
        }
        let sbin = Path::new("/usr/sbin/nginx");
        if sbin.is_file() {
            return Some(sbin.to_path_buf());
        }
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|d| d.join("nginx"))
            .find(|p| p.is_file())
    }

    /// Starts nginx with
    /// `secure_link_md5 "$secure_link_expires$uri$remote_addr {secret}"`.
    ///
    /// `files` are `(path, body)` pairs relative to `/s/`, e.g.
    /// `("live/seg1.ts", b"...")` is served as `/s/live/seg1.ts`.
    pub fn start(secret: &str, files: &[(&str, &[u8])]) -> io::Result<Self> {
        Self::start_with(secret, files, true)
    }

    /// Like [`start`](Self::start); with `bind_remote_addr = false` the
    /// config omits `$remote_addr` from `secure_link_md5`.
    pub fn start_with(
        secret: &str,
        files: &[(&str, &[u8])],
        bind_remote_addr: bool,
    ) -> io::Result<Self> {
        if secret.is_empty()
            || !secret.bytes().all(|b| {
                b.is_ascii_graphic() && !matches!(b, b'"' | b'\\' | b'$' | b'{' | b'}' | b';')
            })
        {
            return Err(invalid(
                "secret must be printable ASCII without \" \\ $ { } ; or spaces",
            ));
        }
        let names: Vec<String> = files.iter().map(|(name, _)| format!("s/{name}")).collect();
        let files: Vec<(&str, &[u8])> = names
            .iter()
            .zip(files)
            .map(|(name, (_, body))| (name.as_str(), *body))
            .collect();
        Self::start_server(&secure_link_location(secret, bind_remote_addr), &files)
    }

    /// Starts nginx with `directives` inside its `server {}` block, after `listen`,
    /// `server_name` and `root`. `files` are `(path, body)` pairs relative to the root, e.g.
    /// `("live/main.m3u8", b"...")` is served as `/live/main.m3u8`.
    pub fn start_server(directives: &str, files: &[(&str, &[u8])]) -> io::Result<Self> {
        let bin = Self::find_binary().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "nginx binary not found (set TOLLGATE_NGINX_BIN, or install the Debian `nginx` package)",
            )
        })?;
        let dir = make_temp_dir()?;
        // From here on, clean the dir up on every error path.
        let mut this = Nginx {
            child: None,
            dir,
            port: 0,
        };
        this.write_files(files)?;
        let mut last_err = None;
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port()?;
            fs::write(
                this.dir.join("nginx.conf"),
                render_config(&this.dir, port, directives),
            )?;
            match this.spawn_and_wait(&bin, port) {
                Ok(()) => return Ok(this),
                Err(StartError::PortInUse(e)) => last_err = Some(e),
                Err(StartError::Fatal(e)) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("nginx did not start")))
    }

    /// `http://127.0.0.1:<port>`, to be joined with a path.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The socket address nginx listens on.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The temp dir holding config, logs and the served files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// nginx's error log so far (for failure messages).
    pub fn error_log(&self) -> String {
        read_logs(&self.dir)
    }

    fn write_files(&self, files: &[(&str, &[u8])]) -> io::Result<()> {
        let root = self.dir.join("www");
        fs::create_dir_all(&root)?;
        for (name, body) in files {
            let rel = Path::new(name);
            let ok = !name.is_empty()
                && rel
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_)));
            if !ok {
                return Err(invalid("file names must be relative paths without `..`"));
            }
            let path = root.join(rel);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent)?;
            }
            fs::write(path, body)?;
        }
        Ok(())
    }

    fn spawn_and_wait(&mut self, bin: &Path, port: u16) -> Result<(), StartError> {
        let stderr = fs::File::create(self.dir.join("stderr.log")).map_err(StartError::Fatal)?;
        let child = Command::new(bin)
            .arg("-p")
            .arg(&self.dir)
            .arg("-c")
            .arg(self.dir.join("nginx.conf"))
            .arg("-e")
            .arg(self.dir.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(StartError::Fatal)?;
        self.child = Some(child);
        self.port = port;
        let addr = self.addr();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let exited = match self.child.as_mut().map(Child::try_wait) {
                Some(Ok(Some(status))) => Some(status.to_string()),
                Some(Ok(None)) => None,
                Some(Err(e)) => return Err(StartError::Fatal(e)),
                None => Some("not running".into()),
            };
            if let Some(status) = exited {
                self.child = None;
                let logs = read_logs(&self.dir);
                let err =
                    io::Error::other(format!("nginx exited ({status}) during startup:\n{logs}"));
                return Err(if logs.contains("Address already in use") {
                    StartError::PortInUse(err)
                } else {
                    StartError::Fatal(err)
                });
            }
            // Ours answers with its own directory: another server that took the port first
            // (nginx then exits "Address already in use", found above) does not.
            if self.answers_as_itself(addr) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.stop();
                return Err(StartError::Fatal(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "nginx did not accept connections on {addr} within {READY_TIMEOUT:?}:\n{}",
                        read_logs(&self.dir)
                    ),
                )));
            }
            // Poll interval between connection attempts (not a readiness guess).
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the server on `addr` is this nginx: `GET /__harness_ready` answers with this
    /// instance's directory.
    fn answers_as_itself(&self, addr: SocketAddr) -> bool {
        use std::io::Write;
        let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        if s.write_all(b"GET /__harness_ready HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        let me = self.dir.display().to_string();
        answer.ends_with(me.as_bytes())
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

enum StartError {
    PortInUse(io::Error),
    Fatal(io::Error),
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.to_string())
}

fn free_port() -> io::Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(l.local_addr()?.port())
}

fn make_temp_dir() -> io::Result<PathBuf> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let base = std::env::temp_dir();
    for _ in 0..100 {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("tollgate-nginx-{}-{n}-{nanos}", std::process::id()));
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("could not create a temp dir"))
}

fn read_logs(dir: &Path) -> String {
    let mut out = String::new();
    for name in ["stderr.log", "error.log"] {
        if let Ok(mut f) = fs::File::open(dir.join(name)) {
            let mut s = String::new();
            if f.read_to_string(&mut s).is_ok() && !s.trim().is_empty() {
                out.push_str(&format!("--- {name} ---\n{s}"));
            }
        }
    }
    out
}

fn is_root() -> bool {
    // Effective uid from procfs; avoids a libc dependency.
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// The `secure_link` location of [`Nginx::start`].
pub fn secure_link_location(secret: &str, bind_remote_addr: bool) -> String {
    let remote = if bind_remote_addr { "$remote_addr" } else { "" };
    format!(
        r#"location /s/ {{
    secure_link $arg_md5,$arg_expires;
    secure_link_md5 "$secure_link_expires$uri{remote} {secret}";
    if ($secure_link = "") {{ return 403; }}
    if ($secure_link = "0") {{ return 410; }}
}}

location / {{
    return 404;
}}
"#
    )
}

/// The nginx config used by the harness: `directives` inside one `server` on `port`.
pub fn render_config(dir: &Path, port: u16, directives: &str) -> String {
    let d = dir.display();
    let user = if is_root() { "user root;\n" } else { "" };
    let directives = directives.replace('\n', "\n        ");
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
{user}pid {d}/nginx.pid;
error_log {d}/error.log info;

events {{
    worker_connections 64;
}}

http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body_temp;
    proxy_temp_path {d}/proxy_temp;
    fastcgi_temp_path {d}/fastcgi_temp;
    uwsgi_temp_path {d}/uwsgi_temp;
    scgi_temp_path {d}/scgi_temp;
    default_type application/octet-stream;
    server_tokens off;

    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        root {d}/www;

        # The harness's readiness probe: this instance, not whatever else holds the port.
        location = /__harness_ready {{
            return 200 "{d}";
        }}

        {directives}
    }}
}}
"#
    )
}
