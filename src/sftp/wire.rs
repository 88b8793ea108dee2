//! The payloads of SFTP extension requests and replies (`SSH_FXP_EXTENDED` /
//! `SSH_FXP_EXTENDED_REPLY`): SSH wire strings and integers, decoded strictly (a short or
//! malformed payload is `None`, never a panic) and encoded as OpenSSH's client reads them.

use crate::files::SpaceInfo;

/// Reads SSH wire values from an extension's payload.
pub struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Reader<'a> {
        Reader(data)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    pub fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }

    pub fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }

    /// A length-prefixed byte string.
    pub fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.u32()?).ok()?;
        self.take(len)
    }

    /// A length-prefixed UTF-8 string.
    pub fn string(&mut self) -> Option<String> {
        std::str::from_utf8(self.bytes()?).ok().map(str::to_owned)
    }
}

/// Builds an extension reply's payload.
#[derive(Default)]
pub struct Writer(Vec<u8>);

impl Writer {
    pub fn u64(mut self, v: u64) -> Writer {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn bytes(mut self, v: &[u8]) -> Writer {
        let len = u32::try_from(v.len()).unwrap_or(u32::MAX);
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(&v[..len as usize]);
        self
    }

    pub fn into_inner(self) -> Vec<u8> {
        self.0
    }
}

/// `statvfs@openssh.com` / `fstatvfs@openssh.com` reply (version 2): eleven u64s.
pub fn statvfs_reply(space: &SpaceInfo) -> Vec<u8> {
    const ST_RDONLY: u64 = 1;
    const ST_NOSUID: u64 = 2;
    let flags = ST_NOSUID | if space.read_only { ST_RDONLY } else { 0 };
    Writer::default()
        .u64(space.block_size)
        .u64(space.fragment_size)
        .u64(space.blocks)
        .u64(space.blocks_free)
        .u64(space.blocks_available)
        .u64(space.files)
        .u64(space.files_free)
        .u64(space.files_available)
        .u64(space.fs_id)
        .u64(flags)
        .u64(space.name_max)
        .into_inner()
}

/// The `uids`/`gids` lists of a `users-groups-by-id@openssh.com` request: each a string
/// holding packed u32s.
pub fn id_lists(data: &[u8]) -> Option<(Vec<u32>, Vec<u32>)> {
    let mut r = Reader::new(data);
    let ids = |packed: &[u8]| -> Option<Vec<u32>> {
        if !packed.len().is_multiple_of(4) {
            return None;
        }
        let mut r = Reader::new(packed);
        (0..packed.len() / 4).map(|_| r.u32()).collect()
    };
    let uids = ids(r.bytes()?)?;
    let gids = ids(r.bytes()?)?;
    Some((uids, gids))
}

/// The reply to `users-groups-by-id@openssh.com`: a string of packed user names, then one
/// of packed group names (an empty name for an id we do not know).
pub fn names_reply<'n>(
    users: impl Iterator<Item = &'n str>,
    groups: impl Iterator<Item = &'n str>,
) -> Vec<u8> {
    let pack = |names: &mut dyn Iterator<Item = &'n str>| {
        names
            .fold(Writer::default(), |w, name| w.bytes(name.as_bytes()))
            .into_inner()
    };
    let (mut users, mut groups) = (users, groups);
    let users = pack(&mut users);
    let groups = pack(&mut groups);
    Writer::default().bytes(&users).bytes(&groups).into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_refuse_short_or_overlong_payloads() {
        let data = Writer::default().bytes(b"/a").u64(7).into_inner();
        let mut r = Reader::new(&data);
        assert_eq!(r.string().as_deref(), Some("/a"));
        assert_eq!(r.u64(), Some(7));
        assert_eq!(r.u32(), None);
        assert_eq!(Reader::new(&[0, 0, 0, 200, 1]).bytes(), None);
        assert_eq!(Reader::new(&[0, 0, 0, 1, 0xff]).string(), None);
    }

    #[test]
    fn id_lists_and_names_round_trip() {
        let uids: Vec<u8> = [1000u32, 0].iter().flat_map(|v| v.to_be_bytes()).collect();
        let gids: Vec<u8> = 1000u32.to_be_bytes().to_vec();
        let data = Writer::default().bytes(&uids).bytes(&gids).into_inner();
        assert_eq!(id_lists(&data), Some((vec![1000, 0], vec![1000])));
        assert_eq!(
            id_lists(&Writer::default().bytes(&[1, 2, 3]).into_inner()),
            None
        );
        let reply = names_reply(["alice", ""].into_iter(), ["filegate"].into_iter());
        let mut r = Reader::new(&reply);
        let users = r.bytes().unwrap();
        let groups = r.bytes().unwrap();
        let mut u = Reader::new(users);
        assert_eq!(u.string().as_deref(), Some("alice"));
        assert_eq!(u.string().as_deref(), Some(""));
        assert_eq!(Reader::new(groups).string().as_deref(), Some("filegate"));
    }

    #[test]
    fn statvfs_reply_has_eleven_fields() {
        let reply = statvfs_reply(&SpaceInfo {
            read_only: true,
            ..Default::default()
        });
        assert_eq!(reply.len(), 88);
        assert_eq!(&reply[72..80], &3u64.to_be_bytes());
    }
}
