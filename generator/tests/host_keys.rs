//! Every node gets its SSH host key at generate time, shipped in its --extra-files root, and
//! the fleet's known_hosts names it: a real sshd serves the key (ssh-keyscan reads it back),
//! the real ssh-keygen finds each node by name and address in known_hosts, and a re-run
//! changes nothing.

mod common;

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{generate, repo_root};
use plasmagen::inventory;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn out_of(cmd: &mut Command) -> String {
    let o = cmd
        .output()
        .expect("run (Debian package openssh-client / openssh-server)");
    assert!(
        o.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn each_node_has_a_pinned_host_key_that_survives_re_runs() {
    let out = tempfile::tempdir().unwrap();
    let inv_path = repo_root().join("examples/mixed.toml");
    let inv = inventory::load(&inv_path).unwrap().inventory;
    assert!(generate(&inv_path, out.path()).status.success());
    let secrets = out.path().join("secrets");
    let known = secrets.join("known_hosts");
    let known_text = std::fs::read_to_string(&known).unwrap();
    assert_eq!(mode(&known), 0o644);

    for node in &inv.nodes {
        let key = plasmagen::hostkeys::private_path(&secrets, &node.hostname);
        let public = plasmagen::hostkeys::public_path(&secrets, &node.hostname);
        assert_eq!(mode(&key), 0o600, "{}", node.hostname);
        assert_eq!(mode(&public), 0o644);
        assert_eq!(mode(key.parent().unwrap()), 0o755, "lands on /etc/ssh");
        // The private key is OpenSSH's format and belongs to the public one.
        let derived = out_of(Command::new("ssh-keygen").arg("-y").arg("-f").arg(&key));
        let pub_line = std::fs::read_to_string(&public).unwrap();
        let blob = |l: &str| l.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        assert_eq!(blob(&derived), blob(&pub_line));
        // known_hosts answers for every name and address of the node (ssh-keygen -F).
        for name in [
            node.hostname.clone(),
            inv.fqdn(node),
            node.provisioning_ip.to_string(),
            node.production_ip.to_string(),
        ] {
            let found = out_of(
                Command::new("ssh-keygen")
                    .arg("-F")
                    .arg(&name)
                    .arg("-f")
                    .arg(&known),
            );
            assert!(found.contains(&blob(&pub_line)), "{name}: {found}");
        }
    }
    // luks-lvm nodes: their initrd's key at [provisioning IP]:2222.
    let worker2 = inv.node("worker2").unwrap();
    let initrd =
        std::fs::read_to_string(plasmagen::luks::initrd_host_pub_path(&secrets, "worker2"))
            .unwrap();
    let found = out_of(
        Command::new("ssh-keygen")
            .arg("-F")
            .arg(format!("[{}]:2222", worker2.provisioning_ip))
            .arg("-f")
            .arg(&known),
    );
    assert!(
        found.contains(initrd.split_whitespace().nth(1).unwrap()),
        "{found}"
    );

    // A re-run (a reinstall is one) keeps every key and the file.
    let before: Vec<Vec<u8>> = inv
        .nodes
        .iter()
        .map(|n| std::fs::read(plasmagen::hostkeys::private_path(&secrets, &n.hostname)).unwrap())
        .collect();
    let mtime = std::fs::metadata(&known).unwrap().modified().unwrap();
    assert!(generate(&inv_path, out.path()).status.success());
    for (n, b) in inv.nodes.iter().zip(&before) {
        assert_eq!(
            &std::fs::read(plasmagen::hostkeys::private_path(&secrets, &n.hostname)).unwrap(),
            b
        );
    }
    assert_eq!(std::fs::read_to_string(&known).unwrap(), known_text);
    assert_eq!(
        std::fs::metadata(&known).unwrap().modified().unwrap(),
        mtime
    );
}

#[test]
fn a_real_sshd_serves_the_generated_key() {
    let out = tempfile::tempdir().unwrap();
    let inv_path = repo_root().join("examples/runbook.toml");
    assert!(generate(&inv_path, out.path()).status.success());
    let secrets = out.path().join("secrets");
    let key = plasmagen::hostkeys::private_path(&secrets, "node01");
    let public =
        std::fs::read_to_string(plasmagen::hostkeys::public_path(&secrets, "node01")).unwrap();

    std::fs::create_dir_all("/run/sshd").unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sshd = ["/usr/sbin/sshd", "/usr/bin/sshd"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("sshd (Debian package openssh-server)");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _server = Kill(
        Command::new(sshd)
            .args(["-D", "-e", "-f", "/dev/null"])
            .arg("-o")
            .arg(format!("HostKey={}", key.display()))
            .args(["-o", "ListenAddress=127.0.0.1", "-o", "PidFile=none", "-p"])
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let served = loop {
        let o = Command::new("ssh-keyscan")
            .args(["-t", "ed25519", "-p"])
            .arg(port.to_string())
            .arg("127.0.0.1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        if text.contains("ssh-ed25519") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let blob = public.split_whitespace().nth(1).unwrap();
    assert!(
        served.contains(blob),
        "sshd did not serve the generated key: {served:?}"
    );
}
