//! `Slapd`: a real OpenLDAP server (Debian's `slapd`) for tests, on 127.0.0.1 on a free
//! port, with its own config and database in a temporary folder. Seeded with
//! `dc=example,dc=org`, `ou=people`, `ou=groups` and a search account
//! (`cn=filegate,dc=example,dc=org` / [`Slapd::SEARCH_PASSWORD`]); tests add users and groups
//! with [`Slapd::user`], [`Slapd::group`], [`Slapd::ldif`] (ldapadd/ldapmodify as the root
//! DN). Stopped and restarted on the same port to test an unreachable directory. Killed on
//! drop. [`Slapd::start`] returns `None` (after a loud SKIPPED line) when slapd is not
//! installed (`.ci/run` installs it: `tests/interop/apt-packages.txt`).

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use filegate::test_support::TempDir;

pub const BASE: &str = "dc=example,dc=org";
const ROOT_DN: &str = "cn=admin,dc=example,dc=org";
const ROOT_PW: &str = "root-secret";

pub struct Slapd {
    pub port: u16,
    dir: TempDir,
    child: Option<Child>,
}

impl Slapd {
    pub const SEARCH_DN: &str = "cn=filegate,dc=example,dc=org";
    pub const SEARCH_PASSWORD: &str = "search-secret";

    /// Starts a seeded directory, or says SKIPPED and returns `None` without slapd.
    pub fn start(test: &str) -> Option<Slapd> {
        let found = ["/usr/sbin/slapd", "/usr/bin/ldapadd"]
            .iter()
            .all(|p| std::path::Path::new(p).exists());
        if !found {
            eprintln!(
                "SKIPPED {test}: slapd/ldap-utils not installed (apt-get install slapd ldap-utils)"
            );
            return None;
        }
        let dir = TempDir::new("slapd");
        std::fs::create_dir_all(dir.path().join("db")).unwrap();
        let conf = format!(
            "include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             include /etc/ldap/schema/nis.schema\n\
             pidfile {d}/slapd.pid\n\
             modulepath /usr/lib/ldap\n\
             moduleload back_mdb\n\
             database mdb\n\
             maxsize 16777216\n\
             suffix \"{BASE}\"\n\
             rootdn \"{ROOT_DN}\"\n\
             rootpw {ROOT_PW}\n\
             directory {d}/db\n\
             access to attrs=userPassword by self read by anonymous auth by * none\n\
             access to * by * read\n",
            d = dir.path().display()
        );
        std::fs::write(dir.path().join("slapd.conf"), conf).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut slapd = Slapd {
            port,
            dir,
            child: None,
        };
        slapd.run();
        slapd.ldif(
            "ldapadd",
            &format!(
                "dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n\
                 dn: ou=people,{BASE}\nobjectClass: organizationalUnit\nou: people\n\n\
                 dn: ou=groups,{BASE}\nobjectClass: organizationalUnit\nou: groups\n\n\
                 dn: {}\nobjectClass: person\ncn: filegate\nsn: service\nuserPassword: {}\n",
                Self::SEARCH_DN,
                Self::SEARCH_PASSWORD
            ),
        );
        Some(slapd)
    }

    /// `ldap://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    fn run(&mut self) {
        let conf: PathBuf = self.dir.path().join("slapd.conf");
        let child = Command::new("/usr/sbin/slapd")
            .arg("-f")
            .arg(&conf)
            .arg("-h")
            .arg(format!("ldap://127.0.0.1:{}/", self.port))
            .arg("-d")
            .arg("0")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.path().join("slapd.log")).unwrap())
            .spawn()
            .expect("start slapd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                let err = std::fs::read_to_string(self.dir.path().join("slapd.log"));
                panic!("slapd exited ({status}): {}", err.unwrap_or_default());
            }
            assert!(Instant::now() < deadline, "slapd did not start listening");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (the port stays reserved for [`Slapd::restart`]).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same data.
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }

    /// Runs `ldapadd` / `ldapmodify` as the root DN with `input` on stdin.
    pub fn ldif(&self, tool: &str, input: &str) {
        let mut child = Command::new(format!("/usr/bin/{tool}"))
            .args(["-x", "-H", &self.url(), "-D", ROOT_DN, "-w", ROOT_PW])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run ldap tool");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{tool} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The DN of a user.
    pub fn user_dn(uid: &str) -> String {
        format!("uid={uid},ou=people,{BASE}")
    }

    /// The DN of a group.
    pub fn group_dn(cn: &str) -> String {
        format!("cn={cn},ou=groups,{BASE}")
    }

    /// Adds an `inetOrgPerson` with a clear-text `userPassword` (slapd compares it on bind).
    pub fn user(&self, uid: &str, password: &str) {
        self.ldif(
            "ldapadd",
            &format!(
                "dn: {}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\nuserPassword: {password}\n",
                Self::user_dn(uid)
            ),
        );
    }

    /// Adds a `groupOfNames` with these member uids (and the search account, so that the
    /// group never runs out of members, which `groupOfNames` forbids).
    pub fn group(&self, cn: &str, members: &[&str]) {
        let mut ldif = format!(
            "dn: {}\nobjectClass: groupOfNames\ncn: {cn}\nmember: {}\n",
            Self::group_dn(cn),
            Self::SEARCH_DN
        );
        for m in members {
            ldif.push_str(&format!("member: {}\n", Self::user_dn(m)));
        }
        self.ldif("ldapadd", &ldif);
    }

    /// Adds (`add`) or removes a user from a group.
    pub fn membership(&self, cn: &str, uid: &str, add: bool) {
        let op = if add { "add" } else { "delete" };
        self.ldif(
            "ldapmodify",
            &format!(
                "dn: {}\nchangetype: modify\n{op}: member\nmember: {}\n",
                Self::group_dn(cn),
                Self::user_dn(uid)
            ),
        );
    }

    /// Deletes an entry.
    pub fn delete(&self, dn: &str) {
        let out = Command::new("/usr/bin/ldapdelete")
            .args(["-x", "-H", &self.url(), "-D", ROOT_DN, "-w", ROOT_PW, dn])
            .output()
            .expect("run ldapdelete");
        assert!(
            out.status.success(),
            "ldapdelete failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}
