//! The shared lab: brought up once through the `kubeforge` binary, used by every trial.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use kubeforge_lab::Lab;
use kubeforge_lab::plan::AddressPlan;
use kubeforge_lab::state::Slot;

/// Hosts of the test lab: the cluster starts as 3 control-plane nodes and 1 worker
/// ([`CLUSTER`]); the others join it later.
pub const CONTROL_PLANES: u32 = 4;
pub const WORKERS: u32 = 2;
/// The hosts of the cluster the scenarios build first.
pub const CLUSTER: &[&str] = &["k8scp01", "k8scp02", "k8scp03", "k8s01"];

pub type TestResult = Result<(), libtest_mimic::Failed>;

pub struct Fixture {
    pub lab: Lab,
    pub dir: PathBuf,
    pub plan: AddressPlan,
    /// The machine's lab slot the test lab took (its bridge, cgroups, container names).
    pub slot: Slot,
    /// A small lab of another directory, up before the test lab and through every scenario:
    /// it stands for a lab the user has up (the demo's), which nothing the tests do may touch.
    pub bystander: Bystander,
    /// The machine's non-namespaced sysctls before the lab came up.
    pub sysctls_before: BTreeMap<String, String>,
    /// The lab never turns on forwarding (hosts get no route out).
    pub ip_forward_before: Option<String>,
    /// A swap area on the machine, active from before the lab came up: hosts must neither
    /// see it nor turn it off, and `lab down` turns it back on if it was turned off.
    pub machine_swap: PathBuf,
    /// An offline bundle of the test stand-ins for kubeadm, kubelet and kubectl
    /// (`standin-bundle`), which the cluster's packages come from; containerd comes from the
    /// lab's repository.
    pub bundle: PathBuf,
}

static FIXTURE: OnceLock<Result<Fixture, String>> = OnceLock::new();
static TORN_DOWN: Mutex<bool> = Mutex::new(false);

/// The test lab's directory: `$KUBEFORGE_TEST_LAB_DIR`, else a directory of its own beside
/// the default lab's, which may be up (`./scripts/demo` leaves it up).
pub fn lab_dir() -> PathBuf {
    std::env::var_os("KUBEFORGE_TEST_LAB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/kubeforge/test-lab"))
}

/// The bystander lab's directory, beside the test lab's.
pub fn bystander_dir() -> PathBuf {
    let dir = lab_dir();
    dir.with_file_name(format!(
        "{}-bystander",
        dir.file_name().unwrap_or_default().to_string_lossy()
    ))
}

/// A lab of another directory that must stay as it is, whatever the test lab does.
pub struct Bystander {
    pub lab: Lab,
    pub dir: PathBuf,
    pub plan: AddressPlan,
    pub slot: Slot,
}

impl Bystander {
    /// `kubeforge lab ARGS` on the bystander.
    pub fn kubeforge_lab(&self, args: &[&str]) -> Result<Output, String> {
        lab_command(&self.dir, args)
    }

    /// Why the bystander is not as it was brought up: a host not running or not answering
    /// SSH by name, its DNS or package repository not answering.
    pub fn trouble(&self) -> Option<String> {
        let status = match self.lab.status() {
            Ok(s) => s,
            Err(e) => return Some(format!("the bystander lab: {e}")),
        };
        let mut trouble: Vec<String> = status
            .hosts
            .iter()
            .filter(|h| h.state != "running" || !h.ssh || h.link != "up")
            .map(|h| format!("{} is {}, link {}, ssh {}", h.name, h.state, h.link, h.ssh))
            .chain(
                status
                    .services
                    .iter()
                    .filter(|s| !s.running || !s.answers)
                    .map(|s| format!("its {} does not answer", s.name)),
            )
            .collect();
        for h in &self.plan.hosts {
            match self.lab.ssh(&h.name).arg("hostname").output() {
                Ok(o) if String::from_utf8_lossy(&o.stdout).trim() == h.name => {}
                Ok(o) => trouble.push(format!(
                    "ssh {} by name: {}{}",
                    h.name,
                    String::from_utf8_lossy(&o.stdout).trim(),
                    String::from_utf8_lossy(&o.stderr).trim()
                )),
                Err(e) => trouble.push(format!("ssh {}: {e}", h.name)),
            }
        }
        (!trouble.is_empty()).then(|| format!("the bystander lab: {}", trouble.join("; ")))
    }
}

/// The `kubeforge` binary with the test lab's directory.
pub fn kubeforge() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubeforge"));
    cmd.env("KUBEFORGE_LAB_DIR", lab_dir())
        // ssh master connections kept for the next run exit after 3 s idle, not 60 s.
        .env("KUBEFORGE_SSH_PERSIST", SSH_PERSIST_SECS.to_string());
    cmd
}

/// How long kubeforge's ssh masters stay idle in these tests.
pub const SSH_PERSIST_SECS: u64 = 3;

/// kubeforge's ssh master connections to the test lab's hosts still running on this
/// machine (those to other labs' hosts are none of the tests' business).
pub fn ssh_masters() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    // Each names a file of the test lab's directory: its ssh_config, key or known_hosts.
    let lab = format!("{}/", lab_dir().display());
    entries
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.starts_with("ssh ") && c.contains("kubeforge/") && c.contains(" -M "))
        .filter(|c| c.contains(&lab))
        .collect()
}

/// Runs `kubeforge lab ARGS` on the test lab; an error carries its output.
pub fn kubeforge_lab(args: &[&str]) -> Result<Output, String> {
    lab_command(&lab_dir(), args)
}

/// Runs `kubeforge lab ARGS` on the lab in `dir`; an error carries its output.
fn lab_command(dir: &Path, args: &[&str]) -> Result<Output, String> {
    let output = kubeforge()
        .env("KUBEFORGE_LAB_DIR", dir)
        .arg("lab")
        .args(args)
        .output()
        .map_err(|e| format!("running kubeforge: {e}"))?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(format!(
            "`kubeforge lab {}` failed ({}):\n{}{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// The bystander: one host, on the test lab's cache. A bystander left up by a test run that
/// was killed is the tests' own: taken down first.
fn bring_up_bystander() -> Result<Bystander, String> {
    let dir = bystander_dir();
    let lab = Lab::new(&dir).map_err(|e| e.to_string())?;
    if lab.paths().state().exists() {
        note(&format!(
            "the bystander lab of an earlier test run is in {}: taking it down first",
            dir.display()
        ));
        lab_command(&dir, &["down"])?;
    }
    let cache = lab_dir().join("cache");
    let cache = cache.display().to_string();
    let started = Instant::now();
    let output = lab_command(
        &dir,
        &[
            "up",
            "--control-planes",
            "1",
            "--workers",
            "0",
            "--cache",
            &cache,
        ],
    )?;
    note(&format!(
        "bystander lab up in {:.1}s:\n{}",
        started.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&output.stdout)
    ));
    let state = lab.state().map_err(|e| e.to_string())?;
    Ok(Bystander {
        lab,
        dir,
        plan: state.plan,
        slot: state.slot,
    })
}

fn bring_up() -> Result<Fixture, String> {
    let dir = lab_dir();
    let lab = Lab::new(&dir).map_err(|e| e.to_string())?;
    if lab.paths().state().exists() && lab.processes().is_empty() {
        // A lab whose hosts are all gone (the machine restarted under it): nobody's lab, so
        // `down` restores what it changed on the machine and the run goes on.
        note(&format!(
            "a stale lab in {} (no host of it runs): taking it down first",
            dir.display()
        ));
        kubeforge_lab(&["down"])?;
    }
    if lab.paths().state().exists() {
        return Err(format!(
            "a lab is already up in {}; take it down (`kubeforge lab down`) or point \
             KUBEFORGE_LAB_DIR at another directory",
            dir.display()
        ));
    }
    let machine_swap = add_machine_swap()?;
    let sysctls_before = kubeforge_lab::sys::machine_sysctls();
    let ip_forward_before = kubeforge_lab::sys::read_sysctl("net.ipv4.ip_forward");
    let bystander = bring_up_bystander()?;
    let started = Instant::now();
    let output = kubeforge_lab(&[
        "up",
        "--control-planes",
        &CONTROL_PLANES.to_string(),
        "--workers",
        &WORKERS.to_string(),
    ])?;
    note(&format!(
        "lab up in {:.1}s:\n{}",
        started.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&output.stdout)
    ));
    let state = lab.state().map_err(|e| e.to_string())?;
    let bundle = dir.join("test-bundle");
    make_test_bundle(&bundle)?;
    let fixture = Fixture {
        lab,
        dir,
        plan: state.plan,
        slot: state.slot,
        bystander,
        sysctls_before,
        ip_forward_before,
        machine_swap,
        bundle,
    };
    fixture
        .inventory_of(CLUSTER)
        .map_err(|e| format!("writing the test inventory: {e}"))?;
    Ok(fixture)
}

/// `standin-bundle`, built with the workspace beside this test.
pub fn standin_bundle() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("standin-bundle"))
        .filter(|p| p.is_file())
        .ok_or_else(|| {
            "standin-bundle is not built: run the workspace's tests (cargo test --workspace \
             --all-targets), or cargo build -p kubeforge-standins first"
                .to_string()
        })?;
    Ok(bin)
}

/// The test bundle, made afresh in `dir`.
fn make_test_bundle(dir: &Path) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(dir);
    let started = Instant::now();
    run(Command::new(standin_bundle()?).arg(dir))?;
    note(&format!(
        "test bundle of the stand-ins in {} ({:.1}s)",
        dir.display(),
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// The test swap area's file: beside the lab directory, on the machine's own file system.
fn machine_swap_file() -> PathBuf {
    let dir = lab_dir();
    dir.with_file_name(format!(
        "{}-test.swap",
        dir.file_name().unwrap_or_default().to_string_lossy()
    ))
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let output = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Makes and turns on a 16 MiB swap file on the machine.
fn add_machine_swap() -> Result<PathBuf, String> {
    let file = machine_swap_file();
    remove_machine_swap();
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    run(Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", file.display()))
        .args(["bs=1M", "count=16", "status=none"]))?;
    run(Command::new("chmod").arg("600").arg(&file))?;
    run(Command::new("mkswap").arg("-q").arg(&file))?;
    run(Command::new("swapon").arg(&file))?;
    Ok(file)
}

/// Turns the test swap area off and removes its file (whatever state it is in).
pub fn remove_machine_swap() {
    let file = machine_swap_file();
    if kubeforge_lab::sys::machine_swaps()
        .iter()
        .any(|s| Path::new(&s.filename) == file)
    {
        let _ = run(Command::new("swapoff").arg(&file));
    }
    let _ = std::fs::remove_file(&file);
}

/// The lab, brought up on first use.
pub fn lab() -> Result<&'static Fixture, libtest_mimic::Failed> {
    FIXTURE
        .get_or_init(bring_up)
        .as_ref()
        .map_err(|e| format!("lab is not up: {e}").into())
}

/// Whether the lab was brought up and not yet taken down.
pub fn mark_torn_down() {
    *TORN_DOWN.lock().unwrap_or_else(|e| e.into_inner()) = true;
}

pub fn down_if_still_up() {
    let torn_down = *TORN_DOWN.lock().unwrap_or_else(|e| e.into_inner());
    if FIXTURE.get().is_some_and(|f| f.is_ok()) && !torn_down {
        note("taking the lab down (the teardown trial did not run)");
        if let Err(e) = kubeforge_lab(&["down"]) {
            note(&e);
        }
    }
    if Lab::new(bystander_dir()).is_ok_and(|l| l.paths().state().exists())
        && let Err(e) = lab_command(&bystander_dir(), &["down"])
    {
        note(&e);
    }
    remove_machine_swap();
}

impl Fixture {
    /// The inventory of the test cluster ([`CLUSTER`]), written by [`Fixture::inventory_of`].
    pub fn inventory(&self) -> PathBuf {
        self.dir.join("test-cluster.yaml")
    }

    /// Writes the inventory of a cluster of `hosts` (the lab's inventory, with these hosts and
    /// the test bundle as the package source) and returns its path: `test-cluster.yaml` for
    /// [`CLUSTER`], `test-cluster-<n>.yaml` otherwise.
    pub fn inventory_of(&self, hosts: &[&str]) -> std::io::Result<PathBuf> {
        let lab = std::fs::read_to_string(self.lab.inventory())?;
        let mut text = String::from("hosts:\n");
        for host in hosts {
            text.push_str(&format!("  - {host}\n"));
        }
        let rest: String = lab
            .split_inclusive('\n')
            .skip_while(|l| !l.starts_with("ssh:"))
            .collect();
        text.push_str(&rest);
        text.push_str(&format!(
            "packages:\n  source: bundle\n  bundle: {}\ncni: flannel\n",
            self.bundle.display()
        ));
        let path = if hosts == CLUSTER {
            self.inventory()
        } else {
            self.dir.join(format!("test-cluster-{}.yaml", hosts.len()))
        };
        std::fs::write(&path, text)?;
        Ok(path)
    }

    /// Runs a command on a host over SSH, by the host's name through the lab's ssh_config
    /// (strict host key checking); returns its stdout.
    pub fn ssh(&self, host: &str, command: &str) -> Result<String, String> {
        let output = self
            .lab
            .ssh(host)
            .arg(command)
            .output()
            .map_err(|e| format!("running ssh: {e}"))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(format!(
                "ssh {host} {command:?} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
    }

    /// `body` run while etcd holds a member that never started (what a failed or foreign join
    /// leaves), added at `address` (the default lab's `10.213.0.N`) and removed afterwards,
    /// whatever `body` returned.
    pub fn with_foreign_member<T>(
        &self,
        address: &str,
        body: impl FnOnce() -> Result<T, libtest_mimic::Failed>,
    ) -> Result<T, libtest_mimic::Failed> {
        let peer = format!("https://{}:2380", self.in_subnet(address));
        self.ssh(
            "k8scp01",
            &format!("{ETCDCTL} member add ghost --peer-urls={peer}"),
        )?;
        let result = body();
        let id = self.ssh(
            "k8scp01",
            &format!("{ETCDCTL} member list | grep -F {peer} | cut -d, -f1"),
        )?;
        self.ssh("k8scp01", &format!("{ETCDCTL} member remove {}", id.trim()))?;
        result
    }

    /// `text` with the default lab's addresses (`10.213.0.N`) turned into the test lab's,
    /// whichever subnet it took.
    pub fn in_subnet(&self, text: &str) -> String {
        let o = self.plan.subnet.network().octets();
        text.replace("10.213.0.", &format!("{}.{}.{}.", o[0], o[1], o[2]))
    }

    /// A host's address, for what is not SSH (a TCP probe).
    pub fn address(&self, host: &str) -> String {
        self.plan
            .host(host)
            .map(|h| h.address.to_string())
            .unwrap_or_default()
    }
}

/// A line on standard error, beside the harness's own output.
pub fn note(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// Fails the trial with a message unless `cond`.
pub fn ensure(cond: bool, message: impl FnOnce() -> String) -> TestResult {
    if cond { Ok(()) } else { Err(message().into()) }
}

/// etcdctl in k8scp01's etcd pod, with the certificates kubeadm gives etcd's health checks.
pub const ETCDCTL: &str = "kubectl --kubeconfig=/etc/kubernetes/admin.conf -n kube-system exec etcd-k8scp01 -- etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt --key=/etc/kubernetes/pki/etcd/healthcheck-client.key";
