//! Who may manage what: the rights rules the REST API and the web console share (DESIGN §2,
//! API.md). Front-ends ask these questions with the caller's [`Principal`]; they never
//! re-derive the answers. Each front-end maps a [`Refusal`] to its own wire form.

use crate::identity::{PermissionSet, Principal};
use crate::model::KeyRecord;

/// Why a management request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("this key may only be used by the desktop app")]
    OnlyForDesktopApp,
    #[error("this key may only be used for file operations")]
    OnlyForFileOperations,
    #[error("a key restricted to a folder may not manage accounts")]
    PathRestricted,
    #[error("only site admins may do this")]
    SiteAdminRequired,
    #[error("you may not act for another user")]
    CantActForOtherUser,
}

/// The calling user's id (`None` for a site-wide key).
pub fn user_id(who: &Principal) -> Option<i64> {
    who.user.as_ref().map(|u| u.id)
}

/// Management (keys, users, grants, history) needs a signed-in user or a `full` key without
/// a path restriction.
pub fn require_management(who: &Principal) -> Result<(), Refusal> {
    match who.key.as_ref().map(|k| k.permission_set) {
        None | Some(PermissionSet::Full) => {}
        Some(PermissionSet::DesktopApp) => return Err(Refusal::OnlyForDesktopApp),
        Some(PermissionSet::FilesOnly | PermissionSet::ReadOnly | PermissionSet::WriteOnly) => {
            return Err(Refusal::OnlyForFileOperations);
        }
    }
    if who.key.as_ref().is_some_and(|k| k.path.is_some()) {
        return Err(Refusal::PathRestricted);
    }
    Ok(())
}

/// A site admin (signed in, or by a full key), or a site-wide full key.
pub fn is_admin(who: &Principal) -> bool {
    who.site_admin
}

/// Management rights plus site admin.
pub fn require_admin(who: &Principal) -> Result<(), Refusal> {
    require_management(who)?;
    if is_admin(who) {
        Ok(())
    } else {
        Err(Refusal::SiteAdminRequired)
    }
}

/// The user a `user_id` designates: `0` (or the caller's own id) means the caller; another
/// user is for admins only.
pub fn acting_for(who: &Principal, user_id_param: i64) -> Result<Option<i64>, Refusal> {
    if user_id_param == 0 || Some(user_id_param) == user_id(who) {
        return Ok(user_id(who));
    }
    if is_admin(who) {
        Ok(Some(user_id_param))
    } else {
        Err(Refusal::CantActForOtherUser)
    }
}

/// Whether `who` may see and manage `key`: their own user key, or any key for an admin.
/// Keys one may not manage are to look absent (not found), not forbidden.
pub fn may_manage_key(who: &Principal, key: &KeyRecord) -> bool {
    is_admin(who) || (key.user_id.is_some() && key.user_id == user_id(who))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{ClientInfo, Protocol, UserIdentity};

    fn user(id: i64, admin: bool) -> Principal {
        Principal {
            user: Some(UserIdentity {
                id,
                username: format!("u{id}"),
                revision: 1,
            }),
            key: None,
            site_admin: admin,
            grants: Vec::new(),
            protocol: Protocol::Web,
            client: ClientInfo::new(None),
        }
    }

    #[test]
    fn users_act_for_themselves_admins_for_anyone() {
        assert_eq!(acting_for(&user(3, false), 0), Ok(Some(3)));
        assert_eq!(acting_for(&user(3, false), 3), Ok(Some(3)));
        assert_eq!(
            acting_for(&user(3, false), 4),
            Err(Refusal::CantActForOtherUser)
        );
        assert_eq!(acting_for(&user(3, true), 4), Ok(Some(4)));
        assert_eq!(
            require_admin(&user(3, false)),
            Err(Refusal::SiteAdminRequired)
        );
        assert_eq!(require_admin(&user(3, true)), Ok(()));
    }
}
