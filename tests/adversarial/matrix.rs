//! (a) The permission matrix: every principal kind × every operation × every protocol, with
//! the expected outcome computed from ONE table (the semantics of COMMON.md / DESIGN §2) and
//! checked over real sockets against the disk. Every cell gets a fresh fixture folder; all
//! mismatches are collected and reported together as one failure.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use filegate::identity::GrantLevel::{Full, List, ReadOnly, WriteOnly};
use filegate::identity::{Access, PermissionSet};
use russh_sftp::protocol::{FileAttributes, OpenFlags};
use support::TestGateway;
use support::sftp_client::{self, Sftp};

use crate::clients::{Dav, LOCK_EXCLUSIVE, PATCH_COLOR, blocking, ftp_login, sftp};
use crate::support;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Sftp,
    Ftp,
    WebDav,
}

const PROTOS: [Proto; 3] = [Proto::Sftp, Proto::Ftp, Proto::WebDav];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    List,
    Read,
    Create,
    Overwrite,
    WriteInPlace,
    Append,
    Truncate,
    SetTimes,
    Delete,
    Mkdir,
    Rmdir,
    RenameWithin,
    RenameIn,
    RenameOut,
    CopyWithin,
    CopyIn,
    CopyOut,
    Lock,
    Proppatch,
}

/// What an operation needs.
#[derive(Debug, Clone, Copy)]
enum Need {
    /// These rights at the cell's folder.
    Rights(Access),
    /// Crosses the principal's scope: always refused (n/a for whole-site principals).
    Outside,
}

const L: Access = Access::LIST;
const R: Access = Access::READ;
const W: Access = Access::WRITE;
const D: Access = Access::DELETE;
const M: Access = Access::MKDIR;

/// THE table: each operation, what it needs, and whether SFTP, FTP and WebDAV have it.
fn table() -> Vec<(Op, Need, [bool; 3])> {
    use Need::{Outside, Rights};
    use Op::*;
    vec![
        (List, Rights(L), [true, true, true]),
        (Read, Rights(R), [true, true, true]),
        (Create, Rights(W), [true, true, true]),
        // Changing an existing file's bytes needs WRITE|DELETE, however it is done.
        (Overwrite, Rights(W | D), [true, true, true]),
        // SFTP open without TRUNC + write at 0; FTP REST+STOR; WebDAV PUT + Content-Range.
        (WriteInPlace, Rights(W | D), [true, true, true]),
        // SFTP APPEND flag; FTP APPE; WebDAV PATCH with X-Update-Range: append (SabreDAV).
        (Append, Rights(W | D), [true, true, true]),
        // SFTP setstat size.
        (Truncate, Rights(W | D), [true, false, false]),
        // SFTP setstat times (FTP has no MFMT here; WebDAV none).
        (SetTimes, Rights(W), [true, false, false]),
        (Delete, Rights(D), [true, true, true]),
        (Mkdir, Rights(M), [true, true, true]),
        (Rmdir, Rights(D), [true, true, true]),
        // DELETE at the source, WRITE at the destination.
        (RenameWithin, Rights(D | W), [true, true, true]),
        (RenameIn, Outside, [true, true, true]),
        (RenameOut, Outside, [true, true, true]),
        // READ at the source, WRITE at the destination (WebDAV COPY only).
        (CopyWithin, Rights(R | W), [false, false, true]),
        (CopyIn, Outside, [false, false, true]),
        (CopyOut, Outside, [false, false, true]),
        // LOCK of an existing file changes what others may do with it (round 2, F5).
        (Lock, Rights(W | D), [false, false, true]),
        (Proppatch, Rights(W), [false, false, true]),
    ]
}

/// One principal of the matrix.
struct Row {
    label: &'static str,
    login: String,
    password: String,
    /// What it may do at its cells' folder.
    access: Access,
    /// Site path under which its cells live (inside its scope).
    base: String,
    /// A site folder outside its scope, or `None` for whole-site principals.
    outside: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Allowed,
    Denied,
    NotApplicable,
}

fn expected(row: &Row, need: Need, supported: bool) -> Expect {
    if !supported {
        return Expect::NotApplicable;
    }
    match need {
        Need::Rights(a) if row.access.contains(a) => Expect::Allowed,
        Need::Rights(_) => Expect::Denied,
        Need::Outside if row.outside.is_some() => Expect::Denied,
        Need::Outside => Expect::NotApplicable,
    }
}

/// What the client was told.
enum Said {
    Ok(Option<Vec<u8>>),
    Refused(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Got {
    Allowed,
    Denied,
    Inconsistent(String),
}

impl fmt::Display for Got {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Got::Allowed => f.write_str("allowed"),
            Got::Denied => f.write_str("denied"),
            Got::Inconsistent(why) => write!(f, "inconsistent ({why})"),
        }
    }
}

const ORIGINAL: &[u8] = b"ORIGINAL";
const OUTSIDE: &[u8] = b"OUTSIDE";
const TIMES: u32 = 1_000_000_000;

/// One cell's fixture: `dir` (site path) holds `f.txt` and an empty folder `d`; `out` (site
/// path, outside the scope) holds `o.txt`.
struct Cell {
    dir: String,
    out: Option<String>,
}

impl Cell {
    fn f(&self) -> String {
        format!("{}/f.txt", self.dir)
    }
    fn at(&self, name: &str) -> String {
        format!("{}/{name}", self.dir)
    }
    fn out_at(&self, name: &str) -> String {
        format!("{}/{name}", self.out.as_deref().unwrap_or("/nowhere"))
    }
}

fn disk(gw: &TestGateway, site: &str) -> PathBuf {
    gw.root().join(site.trim_start_matches('/'))
}

fn content(path: &Path) -> Option<Vec<u8>> {
    std::fs::read(path).ok()
}

fn in_place_result(proto: Proto) -> &'static [u8] {
    match proto {
        // FTP: REST 2 + STOR "XX".
        Proto::Ftp => b"ORXXINAL",
        _ => b"XXIGINAL",
    }
}

/// What the disk shows after the operation: `Ok(true)` its effect, `Ok(false)` nothing
/// changed, `Err` anything else (described).
async fn effect(gw: &TestGateway, op: Op, proto: Proto, cell: &Cell) -> Result<bool, String> {
    let f = content(&disk(gw, &cell.f()));
    let f_original = f.as_deref() == Some(ORIGINAL);
    let exists = |site: &str| disk(gw, site).exists();
    let read = |site: &str| content(&disk(gw, site));
    let show = |v: &Option<Vec<u8>>| match v {
        Some(b) => format!("{:?}", String::from_utf8_lossy(b)),
        None => "absent".into(),
    };
    let verdict = |happened: bool, untouched: bool, what: String| {
        if happened {
            Ok(true)
        } else if untouched {
            Ok(false)
        } else {
            Err(what)
        }
    };
    match op {
        Op::List | Op::Read | Op::Lock => {
            verdict(false, f_original, format!("f.txt became {}", show(&f)))
        }
        Op::Create => {
            let n = read(&cell.at("new.txt"));
            verdict(
                n.as_deref() == Some(b"NEW"),
                n.is_none(),
                format!("new.txt is {}", show(&n)),
            )
        }
        Op::Overwrite => verdict(
            f.as_deref() == Some(b"REPLACED"),
            f_original,
            format!("f.txt is {}", show(&f)),
        ),
        Op::WriteInPlace => verdict(
            f.as_deref() == Some(in_place_result(proto)),
            f_original,
            format!("f.txt is {}", show(&f)),
        ),
        Op::Append => verdict(
            f.as_deref() == Some(b"ORIGINAL+A"),
            f_original,
            format!("f.txt is {}", show(&f)),
        ),
        Op::Truncate => verdict(
            f.as_deref() == Some(b"OR"),
            f_original,
            format!("f.txt is {}", show(&f)),
        ),
        Op::SetTimes => {
            let mtime = std::fs::metadata(disk(gw, &cell.f()))
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs());
            verdict(
                mtime == Some(TIMES as u64),
                f_original && mtime != Some(TIMES as u64),
                format!("f.txt is {}, mtime {mtime:?}", show(&f)),
            )
        }
        Op::Delete => verdict(f.is_none(), f_original, format!("f.txt is {}", show(&f))),
        Op::Mkdir => {
            let d = disk(gw, &cell.at("newdir"));
            verdict(d.is_dir(), !d.exists(), "newdir is not a folder".into())
        }
        Op::Rmdir => {
            let d = disk(gw, &cell.at("d"));
            verdict(!d.exists(), d.is_dir(), "d is not a folder".into())
        }
        Op::RenameWithin => {
            let g = read(&cell.at("g.txt"));
            verdict(
                f.is_none() && g.as_deref() == Some(ORIGINAL),
                f_original && g.is_none(),
                format!("f.txt {}, g.txt {}", show(&f), show(&g)),
            )
        }
        Op::RenameIn => {
            let o = read(&cell.out_at("o.txt"));
            let i = read(&cell.at("in.txt"));
            verdict(
                o.is_none() && i.as_deref() == Some(OUTSIDE),
                o.as_deref() == Some(OUTSIDE) && i.is_none(),
                format!("outside o.txt {}, in.txt {}", show(&o), show(&i)),
            )
        }
        Op::RenameOut => {
            let o = read(&cell.out_at("out.txt"));
            verdict(
                f.is_none() && o.as_deref() == Some(ORIGINAL),
                f_original && o.is_none(),
                format!("f.txt {}, outside out.txt {}", show(&f), show(&o)),
            )
        }
        Op::CopyWithin => {
            let c = read(&cell.at("c.txt"));
            verdict(
                c.as_deref() == Some(ORIGINAL) && f_original,
                c.is_none() && f_original,
                format!("c.txt {}", show(&c)),
            )
        }
        Op::CopyIn => {
            let c = read(&cell.at("c.txt"));
            verdict(
                c.as_deref() == Some(OUTSIDE),
                c.is_none() && exists(&cell.out_at("o.txt")),
                format!("c.txt {}", show(&c)),
            )
        }
        Op::CopyOut => {
            let c = read(&cell.out_at("c.txt"));
            verdict(
                c.as_deref() == Some(ORIGINAL),
                c.is_none() && f_original,
                format!("outside c.txt {}", show(&c)),
            )
        }
        Op::Proppatch => {
            let props = gw
                .gateway
                .core
                .store
                .props_of(&cell.f())
                .await
                .map(|p| p.len())
                .unwrap_or(0);
            verdict(props > 0, props == 0 && f_original, "".into())
        }
    }
}

/// Combines what the client was told with what the disk shows.
fn judge(op: Op, said: Said, on_disk: Result<bool, String>) -> Got {
    match (said, on_disk) {
        (_, Err(what)) => Got::Inconsistent(format!("disk: {what}")),
        (Said::Refused(_), Ok(false)) => Got::Denied,
        (Said::Refused(why), Ok(true)) => {
            Got::Inconsistent(format!("refused ({why}) but the change happened"))
        }
        (Said::Ok(data), Ok(changed)) => match op {
            Op::Read => match data {
                Some(d) if d == ORIGINAL => Got::Allowed,
                other => Got::Inconsistent(format!(
                    "read returned {:?}",
                    other.map(|d| String::from_utf8_lossy(&d).into_owned())
                )),
            },
            Op::List => match data {
                Some(d) if String::from_utf8_lossy(&d).contains("f.txt") => Got::Allowed,
                _ => Got::Inconsistent("listing without f.txt".into()),
            },
            Op::Lock => match data {
                None => Got::Allowed,
                Some(why) => Got::Inconsistent(String::from_utf8_lossy(&why).into_owned()),
            },
            _ if changed => Got::Allowed,
            _ => Got::Inconsistent("said ok but nothing changed".into()),
        },
    }
}

// ---- SFTP ----

fn sftp_ok<T>(result: Result<T, russh_sftp::client::error::Error>) -> Result<(), String> {
    sftp::status(result).map(|_| ())
}

async fn sftp_do(s: &Sftp, op: Op, cell: &Cell) -> Said {
    let said = |r: Result<(), String>| match r {
        Ok(()) => Said::Ok(None),
        Err(e) => Said::Refused(e),
    };
    match op {
        Op::List => match sftp::list(s, &cell.dir).await {
            Ok(names) => Said::Ok(Some(names.join("\n").into_bytes())),
            Err(e) => Said::Refused(format!("{e:?}")),
        },
        Op::Read => match sftp::get(s, &cell.f()).await {
            Ok(data) => Said::Ok(Some(data)),
            Err(e) => Said::Refused(format!("{e:?}")),
        },
        Op::Create => said(sftp::put(s, &cell.at("new.txt"), b"NEW").await),
        Op::Overwrite => said(sftp::put(s, &cell.f(), b"REPLACED").await),
        Op::WriteInPlace | Op::Append => {
            let flags = if op == Op::Append {
                OpenFlags::WRITE | OpenFlags::APPEND
            } else {
                OpenFlags::WRITE
            };
            let data: &[u8] = if op == Op::Append { b"+A" } else { b"XX" };
            let handle = match s.raw.open(cell.f(), flags, FileAttributes::default()).await {
                Ok(h) => h.handle,
                Err(e) => {
                    return Said::Refused(format!(
                        "open: {:?}",
                        sftp_ok(Err::<(), _>(e)).err().unwrap_or_default()
                    ));
                }
            };
            let wrote = sftp_ok(s.raw.write(&handle, 0, data.to_vec()).await);
            let closed = sftp_ok(s.raw.close(&handle).await);
            said(wrote.and(closed))
        }
        Op::Truncate => {
            let size = FileAttributes {
                size: Some(2),
                ..Default::default()
            };
            said(sftp_ok(s.raw.setstat(cell.f(), size).await))
        }
        Op::SetTimes => {
            let times = FileAttributes {
                atime: Some(TIMES),
                mtime: Some(TIMES),
                ..Default::default()
            };
            said(sftp_ok(s.raw.setstat(cell.f(), times).await))
        }
        Op::Delete => said(sftp_ok(s.raw.remove(cell.f()).await)),
        Op::Mkdir => said(sftp_ok(
            s.raw
                .mkdir(cell.at("newdir"), FileAttributes::default())
                .await,
        )),
        Op::Rmdir => said(sftp_ok(s.raw.rmdir(cell.at("d")).await)),
        Op::RenameWithin => said(sftp_ok(s.raw.rename(cell.f(), cell.at("g.txt")).await)),
        Op::RenameIn => said(sftp_ok(
            s.raw.rename(cell.out_at("o.txt"), cell.at("in.txt")).await,
        )),
        Op::RenameOut => said(sftp_ok(
            s.raw.rename(cell.f(), cell.out_at("out.txt")).await,
        )),
        other => Said::Refused(format!("{other:?} is not an SFTP operation")),
    }
}

// ---- FTP ----

fn ftp_do(addr: std::net::SocketAddr, login: &str, password: &str, op: Op, cell: &Cell) -> Said {
    use std::io::Cursor;
    let mut ftp = match ftp_login(addr, login, password) {
        Ok(ftp) => ftp,
        Err(e) => return Said::Refused(format!("login: {e}")),
    };
    let said = |r: Result<(), suppaftp::FtpError>| match r {
        Ok(()) => Said::Ok(None),
        Err(e) => Said::Refused(e.to_string()),
    };
    let put = |ftp: &mut suppaftp::FtpStream, path: &str, data: &[u8]| {
        ftp.put_file(path, &mut Cursor::new(data.to_vec()))
            .map(|_| ())
    };
    let result = match op {
        Op::List => match ftp.nlst(Some(&cell.dir)) {
            Ok(names) => Said::Ok(Some(names.join("\n").into_bytes())),
            Err(e) => Said::Refused(e.to_string()),
        },
        Op::Read => match ftp.retr_as_buffer(&cell.f()) {
            Ok(data) => Said::Ok(Some(data.into_inner())),
            Err(e) => Said::Refused(e.to_string()),
        },
        Op::Create => said(put(&mut ftp, &cell.at("new.txt"), b"NEW")),
        Op::Overwrite => said(put(&mut ftp, &cell.f(), b"REPLACED")),
        Op::WriteInPlace => said(
            ftp.resume_transfer(2)
                .and_then(|_| put(&mut ftp, &cell.f(), b"XX")),
        ),
        Op::Append => said(
            ftp.append_file(&cell.f(), &mut Cursor::new(b"+A".to_vec()))
                .map(|_| ()),
        ),
        Op::Delete => said(ftp.rm(cell.f())),
        Op::Mkdir => said(ftp.mkdir(cell.at("newdir"))),
        Op::Rmdir => said(ftp.rmdir(cell.at("d"))),
        Op::RenameWithin => said(ftp.rename(cell.f(), cell.at("g.txt"))),
        Op::RenameIn => said(ftp.rename(cell.out_at("o.txt"), cell.at("in.txt"))),
        Op::RenameOut => said(ftp.rename(cell.f(), cell.out_at("out.txt"))),
        other => Said::Refused(format!("{other:?} is not an FTP operation")),
    };
    let _ = ftp.quit();
    result
}

// ---- WebDAV ----

async fn dav_do(dav: &Dav, op: Op, cell: &Cell) -> Said {
    let reply = |r: Result<crate::clients::Reply, String>| match r {
        Ok(r) if r.status.is_success() => Said::Ok(Some(r.body.into_bytes())),
        Ok(r) => Said::Refused(format!("{}", r.status)),
        Err(e) => Said::Refused(format!("connection: {e}")),
    };
    let overwrite = [("Overwrite", "F")];
    match op {
        Op::List => reply(
            dav.try_call("PROPFIND", &format!("{}/", cell.dir), &[("Depth", "1")], "")
                .await,
        ),
        Op::Read => reply(dav.try_call("GET", &cell.f(), &[], "").await),
        Op::Create => no_body(reply(
            dav.try_call("PUT", &cell.at("new.txt"), &[], "NEW").await,
        )),
        Op::Overwrite => no_body(reply(dav.try_call("PUT", &cell.f(), &[], "REPLACED").await)),
        Op::WriteInPlace => no_body(reply(
            dav.try_call("PUT", &cell.f(), &[("Content-Range", "bytes 0-1/*")], "XX")
                .await,
        )),
        Op::Append => no_body(reply(
            dav.try_call(
                "PATCH",
                &cell.f(),
                &[
                    ("Content-Type", "application/x-sabredav-partialupdate"),
                    ("X-Update-Range", "append"),
                ],
                "+A",
            )
            .await,
        )),
        Op::Delete => no_body(reply(dav.try_call("DELETE", &cell.f(), &[], "").await)),
        Op::Mkdir => no_body(reply(
            dav.try_call("MKCOL", &cell.at("newdir"), &[], "").await,
        )),
        Op::Rmdir => no_body(reply(
            dav.try_call("DELETE", &format!("{}/", cell.at("d")), &[], "")
                .await,
        )),
        Op::RenameWithin
        | Op::RenameIn
        | Op::RenameOut
        | Op::CopyWithin
        | Op::CopyIn
        | Op::CopyOut => {
            let (method, from, to) = match op {
                Op::RenameWithin => ("MOVE", cell.f(), cell.at("g.txt")),
                Op::RenameIn => ("MOVE", cell.out_at("o.txt"), cell.at("in.txt")),
                Op::RenameOut => ("MOVE", cell.f(), cell.out_at("out.txt")),
                Op::CopyWithin => ("COPY", cell.f(), cell.at("c.txt")),
                Op::CopyIn => ("COPY", cell.out_at("o.txt"), cell.at("c.txt")),
                _ => ("COPY", cell.f(), cell.out_at("c.txt")),
            };
            let dest = dav.url(&to);
            let headers = [("Destination", dest.as_str()), overwrite[0]];
            no_body(reply(dav.try_call(method, &from, &headers, "").await))
        }
        Op::Lock => {
            let lock = match dav
                .try_call(
                    "LOCK",
                    &cell.f(),
                    &[("Timeout", "Second-60")],
                    LOCK_EXCLUSIVE,
                )
                .await
            {
                Ok(r) => r,
                Err(e) => return Said::Refused(format!("connection: {e}")),
            };
            if !lock.status.is_success() {
                return Said::Refused(format!("LOCK {}", lock.status));
            }
            let Some(token) = lock
                .headers
                .get("lock-token")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
            else {
                return Said::Refused("LOCK answered without a Lock-Token".into());
            };
            match dav
                .try_call("UNLOCK", &cell.f(), &[("Lock-Token", &token)], "")
                .await
            {
                Ok(r) if r.status.is_success() => Said::Ok(None),
                Ok(r) => Said::Ok(Some(format!("UNLOCK of its own lock: {}", r.status).into())),
                Err(e) => Said::Ok(Some(format!("UNLOCK: connection {e}").into())),
            }
        }
        Op::Proppatch => match dav.try_call("PROPPATCH", &cell.f(), &[], PATCH_COLOR).await {
            Ok(r) if r.status.as_u16() == 207 && r.body.contains(" 200 ") => Said::Ok(None),
            Ok(r) if r.status.as_u16() == 207 => Said::Refused(format!(
                "207 with {}",
                r.body.chars().take(200).collect::<String>()
            )),
            Ok(r) if r.status.is_success() => Said::Ok(None),
            Ok(r) => Said::Refused(format!("{}", r.status)),
            Err(e) => Said::Refused(format!("connection: {e}")),
        },
        other => Said::Refused(format!("{other:?} is not a WebDAV operation")),
    }
}

fn no_body(said: Said) -> Said {
    match said {
        Said::Ok(_) => Said::Ok(None),
        refused => refused,
    }
}

// ---- the runner ----

async fn rows(gw: &TestGateway) -> Vec<Row> {
    let mut rows = Vec::new();
    gw.admin("root", "root-password").await;
    rows.push(Row {
        label: "admin",
        login: "root".into(),
        password: "root-password".into(),
        access: Access::ALL,
        base: "/adm".into(),
        outside: None,
    });
    for (label, name, level) in [
        ("user full", "ufull", Full),
        ("user readonly", "uro", ReadOnly),
        ("user writeonly", "uwo", WriteOnly),
        ("user list", "ulist", List),
    ] {
        let folder = format!("/{name}");
        gw.user(
            name,
            &format!("{name}-password"),
            &[(folder.as_str(), level)],
        )
        .await;
        rows.push(Row {
            label,
            login: name.into(),
            password: format!("{name}-password"),
            access: level.access(),
            base: folder,
            outside: Some("/outside".into()),
        });
    }
    let owner = gw.user("owner", "owner-password", &[("/k", Full)]).await;
    for (label, set) in [
        ("key full", PermissionSet::Full),
        ("key desktop_app", PermissionSet::DesktopApp),
        ("key files_only", PermissionSet::FilesOnly),
        ("key readonly", PermissionSet::ReadOnly),
        ("key writeonly", PermissionSet::WriteOnly),
    ] {
        let (id, secret) = gw
            .key(Some(owner), &format!("m-{}", set.as_str()), None, set)
            .await;
        rows.push(Row {
            label,
            login: format!("@api-{id}"),
            password: secret,
            access: set.file_mask(),
            base: format!("/k/{}", set.as_str()),
            outside: Some("/outside".into()),
        });
    }
    gw.mkdir("k/sub").await;
    let (id, secret) = gw
        .key(Some(owner), "m-sub", Some("k/sub"), PermissionSet::Full)
        .await;
    rows.push(Row {
        label: "key path k/sub",
        login: format!("@api-{id}"),
        password: secret,
        access: Access::ALL,
        base: "/k/sub".into(),
        // Inside the owner's grant, outside the key's path.
        outside: Some("/k/side".into()),
    });
    let (id, secret) = gw.key(None, "m-site", None, PermissionSet::Full).await;
    rows.push(Row {
        label: "site-wide key",
        login: format!("@api-{id}"),
        password: secret,
        access: Access::ALL,
        base: "/site".into(),
        outside: None,
    });
    rows
}

async fn seed(gw: &TestGateway, row_index: usize, row: &Row, proto: Proto, op: Op) -> Cell {
    let tag = format!("{proto:?}-{op:?}").to_lowercase();
    let dir = format!("{}/{tag}", row.base);
    gw.write(&format!("{}/f.txt", &dir[1..]), ORIGINAL).await;
    gw.mkdir(&format!("{}/d", &dir[1..])).await;
    let mut out = None;
    if let Some(o) = &row.outside {
        let path = format!("{o}/r{row_index}-{tag}");
        gw.write(&format!("{}/o.txt", &path[1..]), OUTSIDE).await;
        out = Some(path);
    }
    Cell { dir, out }
}

struct Mismatch {
    principal: &'static str,
    op: Op,
    proto: Proto,
    expected: Expect,
    got: Got,
}

#[tokio::test]
async fn every_principal_kind_gets_exactly_its_rights_on_every_operation_and_protocol() {
    let _shared = crate::clients::shared().await;
    let gw = TestGateway::start().await;
    let rows = rows(&gw).await;
    let table = table();
    let mut mismatches = Vec::new();
    let mut applicable = 0usize;
    let mut grid = String::new();
    let ftp_addr = gw.addr("ftp");
    for (index, row) in rows.iter().enumerate() {
        for proto in PROTOS {
            let p = PROTOS.iter().position(|x| *x == proto).unwrap_or(0);
            let mut marks = String::new();
            let mut sftp: Option<Sftp> = None;
            let dav = Dav::new(&gw, &row.login, &row.password);
            for (op, need, supported) in &table {
                let expect = expected(row, *need, supported[p]);
                if expect == Expect::NotApplicable {
                    marks.push('.');
                    continue;
                }
                applicable += 1;
                let cell = seed(&gw, index, row, proto, *op).await;
                let run = async {
                    match proto {
                        Proto::Sftp => {
                            if sftp.as_ref().is_none_or(|s| s.ssh.is_closed()) {
                                sftp =
                                    sftp_client::login(gw.addr("sftp"), &row.login, &row.password)
                                        .await;
                            }
                            match &sftp {
                                Some(s) => sftp_do(s, *op, &cell).await,
                                None => Said::Refused("SFTP login refused".into()),
                            }
                        }
                        Proto::Ftp => {
                            let (login, password, op) =
                                (row.login.clone(), row.password.clone(), *op);
                            let cell = Cell {
                                dir: cell.dir.clone(),
                                out: cell.out.clone(),
                            };
                            blocking(move || ftp_do(ftp_addr, &login, &password, op, &cell)).await
                        }
                        Proto::WebDav => dav_do(&dav, *op, &cell).await,
                    }
                };
                let said = match tokio::time::timeout(Duration::from_secs(30), run).await {
                    Ok(said) => said,
                    Err(_) => Said::Refused("timed out".into()),
                };
                let got = judge(*op, said, effect(&gw, *op, proto, &cell).await);
                let ok = matches!(
                    (&expect, &got),
                    (Expect::Allowed, Got::Allowed) | (Expect::Denied, Got::Denied)
                );
                marks.push(match (&got, ok) {
                    (Got::Allowed, true) => 'A',
                    (Got::Denied, true) => 'D',
                    _ => '!',
                });
                if !ok {
                    mismatches.push(Mismatch {
                        principal: row.label,
                        op: *op,
                        proto,
                        expected: expect,
                        got,
                    });
                }
            }
            grid.push_str(&format!(
                "{:<17} {:<7} {marks}\n",
                row.label,
                format!("{proto:?}")
            ));
        }
    }
    let ops: Vec<String> = table.iter().map(|(op, _, _)| format!("{op:?}")).collect();
    println!(
        "permission matrix: {} principals × {} operations × {} protocols = {} cells, {} applicable",
        rows.len(),
        table.len(),
        PROTOS.len(),
        rows.len() * table.len() * PROTOS.len(),
        applicable
    );
    println!("columns: {}", ops.join(" "));
    println!("(A allowed, D denied, . n/a, ! mismatch)\n{grid}");
    gw.stop().await;
    if !mismatches.is_empty() {
        let lines: Vec<String> = mismatches
            .iter()
            .map(|m| {
                format!(
                    "  ({}, {:?}, {:?}, expected {:?}, got {})",
                    m.principal, m.op, m.proto, m.expected, m.got
                )
            })
            .collect();
        panic!(
            "{} of {applicable} cells differ from the table:\n{}",
            mismatches.len(),
            lines.join("\n")
        );
    }
}
