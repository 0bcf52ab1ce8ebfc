//! Real `atomicity node run` (and witness, watchtower) processes on loopback: start, stop,
//! kill -9, restart. Used by the devnet and by the end-to-end tests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use atomicity_node::client::ApiClient;
use atomicity_node::datadir::{API_TOKEN_FILE, API_URL_FILE, DataDir, NODE_URL_FILE};

/// How long a node may take to come up.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// One node process.
pub struct NodeProcess {
    bin: PathBuf,
    dir: PathBuf,
    extra: Vec<String>,
    child: Option<Child>,
    /// The node's key (z-base32).
    pub key: String,
    /// Its peer-facing URL.
    pub node_url: String,
    /// Its local API.
    pub api: ApiClient,
}

/// Runs `atomicity --data-dir DIR init` and returns the key.
pub fn init(bin: &Path, dir: &Path) -> Result<String> {
    let out = Command::new(bin)
        .arg("--data-dir")
        .arg(dir)
        .arg("init")
        .output()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    if !out.status.success() {
        bail!("init failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

impl NodeProcess {
    /// Initialises `dir` if needed and starts a node on `listen` (e.g. `127.0.0.1:0`).
    pub fn start(bin: &Path, dir: &Path, listen: &str) -> Result<NodeProcess> {
        NodeProcess::start_with(bin, dir, listen, &[])
    }

    /// Like [`Self::start`], with more arguments for `node run` (e.g. `--witness URL`), which
    /// [`Self::restart`] passes again. Without `--dht-bootstrap` among them the node runs with
    /// `--no-dht`.
    pub fn start_with(
        bin: &Path,
        dir: &Path,
        listen: &str,
        extra: &[String],
    ) -> Result<NodeProcess> {
        let data = DataDir::new(dir);
        if data.identity().is_err() {
            init(bin, dir)?;
        }
        let key = data.identity()?.public_key().to_z32();
        let mut node = NodeProcess {
            bin: bin.to_path_buf(),
            dir: dir.to_path_buf(),
            extra: extra.to_vec(),
            child: None,
            key,
            node_url: String::new(),
            api: ApiClient::new("http://127.0.0.1:1", ""),
        };
        node.spawn(listen)?;
        Ok(node)
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The running process's id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The port of the peer API.
    pub fn port(&self) -> Option<u16> {
        self.node_url
            .rsplit(':')
            .next()?
            .trim_end_matches('/')
            .parse()
            .ok()
    }

    fn spawn(&mut self, listen: &str) -> Result<()> {
        let data = DataDir::new(&self.dir);
        data.clear_run_files();
        let mut args: Vec<String> = ["node", "run", "--listen", listen]
            .map(String::from)
            .into_iter()
            .chain(self.extra.iter().cloned())
            .collect();
        // Test networks are offline: only a node given a (local) DHT uses one.
        if !self.extra.iter().any(|a| a == "--dht-bootstrap") {
            args.push("--no-dht".into());
        }
        self.child = Some(spawn_logged(&self.bin, &self.dir, &args, "node.log")?);
        let started = Instant::now();
        loop {
            let ready = [API_URL_FILE, API_TOKEN_FILE, NODE_URL_FILE]
                .iter()
                .all(|f| data.file(f).exists());
            if ready {
                break;
            }
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                let log = std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default();
                bail!("node exited with {status} while starting:\n{log}");
            }
            if started.elapsed() > START_TIMEOUT {
                bail!("node did not start within {START_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.node_url = data.read_text(NODE_URL_FILE)?;
        self.api = ApiClient::from_dir(&data)?;
        Ok(())
    }

    /// Kills the process with SIGKILL (no chance to clean up) and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits for a graceful exit (SIGKILL after 10 s). Returns the exit
    /// status, or `None` if the node was not running or had to be killed.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        terminate(self.child.take()?)
    }

    /// Starts the node again on the same peer port (after [`Self::kill9`] or [`Self::stop`]).
    pub fn restart(&mut self) -> Result<()> {
        let port = self.port().context("no port known")?;
        self.kill9();
        let listen = format!("127.0.0.1:{port}");
        // The port may linger for a moment after a kill.
        let mut tries = 0;
        loop {
            match self.spawn(&listen) {
                Ok(()) => return Ok(()),
                Err(e) if tries < 50 => {
                    tries += 1;
                    tracing::debug!("restart failed, retrying: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl NodeProcess {
    /// Stops the node and starts it again listening on `listen` (e.g. `127.0.0.1:0`: a new
    /// port, as after a move).
    pub fn restart_at(&mut self, listen: &str) -> Result<()> {
        self.stop();
        self.spawn(listen)
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Runs `bin --data-dir DIR ARGS..` to the end: (exit code, stdout, stderr).
pub fn cli(bin: &Path, dir: &Path, args: &[&str]) -> Result<(i32, String, String)> {
    let out = Command::new(bin)
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// [`cli`] that must succeed: its stdout, or an error with everything it printed.
pub fn cli_ok(bin: &Path, dir: &Path, args: &[&str]) -> Result<String> {
    let (code, stdout, stderr) = cli(bin, dir, args)?;
    if code != 0 {
        bail!("atomicity {args:?} exited with {code}: {stdout}{stderr}");
    }
    Ok(stdout)
}

/// Polls `check` every 200 ms until it holds; after `timeout`, the error it last gave, with
/// `what` was awaited.
pub fn wait_until(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> std::result::Result<(), String>,
) -> Result<()> {
    let start = Instant::now();
    loop {
        match check() {
            Ok(()) => return Ok(()),
            Err(e) if start.elapsed() > timeout => bail!("{what}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Starts `bin --data-dir DIR ARGS..` with stdout and stderr appended to `DIR/log_name`, and
/// `ATOMICITY_LOG` defaulting to `info`.
fn spawn_logged(bin: &Path, dir: &Path, args: &[String], log_name: &str) -> Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(log_name))
        .with_context(|| format!("cannot open {log_name}"))?;
    Command::new(bin)
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env(
            "ATOMICITY_LOG",
            std::env::var("ATOMICITY_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))
}

/// Sends SIGTERM to a child process and waits for it to exit (SIGKILL after 10 s). Returns the
/// exit status, or `None` if it had to be killed.
pub fn terminate(mut child: Child) -> Option<std::process::ExitStatus> {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// A real `atomicity <role> run` service process (`witness`, `watchtower`) on loopback, ready
/// once it wrote `DIR/<role>.url`.
pub struct ServiceProcess {
    bin: PathBuf,
    dir: PathBuf,
    role: String,
    args: Vec<String>,
    child: Option<Child>,
    /// Its URL, from `DIR/<role>.url`.
    pub url: String,
}

impl ServiceProcess {
    /// Starts `atomicity --data-dir DIR <role> run ARGS..`; output goes to `DIR/<role>.log`.
    pub fn start(bin: &Path, dir: &Path, role: &str, args: &[String]) -> Result<ServiceProcess> {
        let mut service = ServiceProcess {
            bin: bin.to_path_buf(),
            dir: dir.to_path_buf(),
            role: role.to_string(),
            args: args.to_vec(),
            child: None,
            url: String::new(),
        };
        service.spawn()?;
        Ok(service)
    }

    fn spawn(&mut self) -> Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let url_file = self.dir.join(format!("{}.url", self.role));
        let _ = std::fs::remove_file(&url_file);
        let mut args: Vec<String> = [self.role.clone(), "run".into()]
            .into_iter()
            .chain(self.args.iter().cloned())
            .collect();
        // Test networks are offline: only a service given a (local) DHT announces itself.
        let announces = matches!(self.role.as_str(), "witness" | "watchtower" | "router");
        if announces && !self.args.iter().any(|a| a == "--dht-bootstrap") {
            args.push("--no-dht".into());
        }
        let log = format!("{}.log", self.role);
        self.child = Some(spawn_logged(&self.bin, &self.dir, &args, &log)?);
        let started = Instant::now();
        while !url_file.exists() {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!(
                    "{} exited with {status} while starting:\n{}",
                    self.role,
                    self.log()
                );
            }
            if started.elapsed() > START_TIMEOUT {
                bail!("{} did not start within {START_TIMEOUT:?}", self.role);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.url = std::fs::read_to_string(&url_file)?.trim().to_string();
        Ok(())
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The running process's id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// What the process wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join(format!("{}.log", self.role))).unwrap_or_default()
    }

    /// A text file the service wrote in its data directory (e.g. `watchtower.vkey`), trimmed.
    pub fn read(&self, name: &str) -> Result<String> {
        let path = self.dir.join(name);
        Ok(std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .trim()
            .to_string())
    }

    /// Kills the process with SIGKILL and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then the exit status (`None` if not running or it had to be killed).
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        terminate(self.child.take()?)
    }

    /// Starts it again with the same arguments (after [`Self::kill9`] or [`Self::stop`]); with
    /// `--listen 127.0.0.1:0` it gets a new port.
    pub fn restart(&mut self) -> Result<()> {
        self.kill9();
        self.spawn()
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A stand-in HTTP server on a loopback port that answers every request with status 200 and
/// `body` as JSON (for tests that play a peer serving forged documents). Returns its URL; it
/// runs until the process ends.
pub fn serve_fixed(body: String) -> Result<String> {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}", listener.local_addr()?);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    Ok(url)
}
