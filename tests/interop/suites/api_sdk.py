"""Files.com's Python SDK against filegate (called by api.sh with the runner's environment)."""
import os
import time

import files_sdk
import files_sdk.error as errors
from files_sdk.models import api_key, history, session, user

API = os.environ["API_ADDR"]
files_sdk.base_url = f"http://{API}"
files_sdk.max_network_retries = 0
ADMIN = os.environ["ADMIN_KEY_SECRET"]


def expect(exc, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except exc as e:
        return e
    raise AssertionError(f"{fn.__name__} did not raise {exc.__name__}")


def as_key(secret):
    files_sdk.set_api_key(secret)
    files_sdk.session_id = None


# --- the eight ApiKey operations, as the site admin ---------------------------------
as_key(ADMIN)
me = api_key.find_current()
assert me.name == "interop admin key", me.name
made = api_key.create({"name": "sdk key", "user_id": 0, "expires_at": "2099-01-01T00:00:00Z", "permission_set": "full"})
assert made.key and len(made.key) == 64, made.key
assert made.user_id == me.user_id
site = api_key.create({"name": "sdk site-wide key"})
assert site.user_id is None, "omitted user_id from an admin makes a site-wide key"
found = api_key.find(made.id)
assert found.name == "sdk key" and found.key is None
updated = api_key.update(made.id, {"name": "sdk key renamed", "expires_at": "2098-01-01T00:00:00Z"})
assert updated.name == "sdk key renamed"
found.update({"description": "updated through the object"})
assert found.description == "updated through the object"

as_key(made.key)
current = api_key.update_current({"name": "sdk key current"})
assert current.name == "sdk key current"
api_key.delete_current()
e = expect(errors.NotAuthenticatedError, api_key.find_current)
assert isinstance(e, errors.InvalidCredentialsError), type(e)

as_key(ADMIN)
api_key.delete(site.id)
expect(errors.NotFoundError, api_key.find, site.id)
expect(errors.NotFoundError, api_key.find, 987654)

# --- a list walked one key per page -------------------------------------------------
for n in range(5):
    api_key.create({"name": f"page key {n}", "user_id": 0})
ids = [k.id for k in api_key.list({"per_page": 1}).auto_paging_iter()]
assert len(ids) == len(set(ids)) >= 6, ids
desc = [k.id for k in api_key.list({"per_page": 2, "sort_by": {"expires_at": "desc"}}).auto_paging_iter()]
assert sorted(desc) == sorted(ids), (desc, ids)

# --- users ----------------------------------------------------------------------------
u = user.create({"username": "sdk-user", "password": "sdk-user-password", "email": "sdk@example.com"})
assert u.username == "sdk-user" and u.id
assert any(x.username == "sdk-user" for x in user.list().auto_paging_iter())
u2 = user.update(u.id, {"email": "sdk2@example.com", "ftp_permission": False})
assert u2.email == "sdk2@example.com" and u2.ftp_permission is False

# --- a session for that user --------------------------------------------------------
files_sdk.set_api_key(None)
s = session.create({"username": "sdk-user", "password": "sdk-user-password"})
assert s.id
files_sdk.session_id = s.id
own = api_key.create({"name": "sdk-user key", "user_id": 0})
assert own.user_id == u.id
listed = [k.id for k in api_key.list().auto_paging_iter()]
assert listed == [own.id], listed
e = expect(errors.NotAuthorizedError, lambda: list(api_key.list({"user_id": me.user_id}).auto_paging_iter()))
assert isinstance(e, errors.CantActForOtherUserError), type(e)
expect(errors.NotAuthorizedError, user.list)
files_sdk.session_id = None

# --- a bad key --------------------------------------------------------------------------
as_key("0" * 64)
expect(errors.NotAuthenticatedError, api_key.find_current)
as_key(ADMIN)

# --- the key made through the API signs in over SFTP; history shows its owner ------
sftp_key = api_key.create({"name": "sdk sftp key", "user_id": int(os.environ["ALICE_ID"])})
import paramiko  # noqa: E402

host, port = os.environ["SFTP_ADDR"].rsplit(":", 1)
t = paramiko.Transport((host, int(port)))
t.connect(username=f"@api-{sftp_key.id}", password=sftp_key.key)
client = paramiko.SFTPClient.from_transport(t)
with client.open("/alice/from-api-key.txt", "wb") as f:
    f.write(b"made with a key created through the API")
t.close()
time.sleep(0.5)
found_upload = False
for action in history.list_for_user(int(os.environ["ALICE_ID"]), {"per_page": 50}).auto_paging_iter():
    if action.interface == "sftp" and action.action == "create" and action.path == "alice/from-api-key.txt":
        assert action.user_id == int(os.environ["ALICE_ID"]) and action.username == "alice"
        found_upload = True
        break
assert found_upload, "the SFTP upload is not in /history as alice"
logins = list(history.list_logins({"per_page": 100}).auto_paging_iter())
assert any(a.interface == "sftp" and a.user_id == int(os.environ["ALICE_ID"]) for a in logins)
assert any(a.interface == "restapi" for a in history.list({"per_page": 1000}).auto_paging_iter())

user.delete(u.id)
expect(errors.NotFoundError, user.find, u.id)
print("api suite: files-com SDK: 8 ApiKey operations, paging, users, session, errors, SFTP + history ok")

# --- and over FTP, when it runs -------------------------------------------------------
if os.environ.get("FTP_ADDR"):
    import ftplib
    import io

    fhost, fport = os.environ["FTP_ADDR"].rsplit(":", 1)
    ftp = ftplib.FTP()
    ftp.connect(fhost, int(fport))
    ftp.login(f"@api-{sftp_key.id}", sftp_key.key)
    ftp.storbinary("STOR /alice/ftp-from-api-key.txt", io.BytesIO(b"via ftp"))
    ftp.quit()
    time.sleep(0.5)
    seen = [a for a in history.list_for_user(int(os.environ["ALICE_ID"]), {"per_page": 100}).auto_paging_iter()
            if a.interface == "ftp" and a.path == "alice/ftp-from-api-key.txt"]
    assert seen and seen[0].username == "alice", "the FTP upload is not in /history as alice"
    print("api suite: the API-made key works over FTP too, logged as alice")

# --- and over WebDAV, when it runs ----------------------------------------------------
if os.environ.get("WEBDAV_ADDR"):
    import base64
    import urllib.request

    auth = base64.b64encode(f"@api-{sftp_key.id}:{sftp_key.key}".encode()).decode()
    req = urllib.request.Request(f"http://{os.environ['WEBDAV_ADDR']}/alice/dav-from-api-key.txt", data=b"via webdav", method="PUT",
                                 headers={"Authorization": f"Basic {auth}"})
    assert urllib.request.urlopen(req).status in (201, 204)
    time.sleep(0.5)
    seen = [a for a in history.list_for_user(int(os.environ["ALICE_ID"]), {"per_page": 100}).auto_paging_iter()
            if a.interface == "webdav" and a.path == "alice/dav-from-api-key.txt"]
    assert seen and seen[0].username == "alice", "the WebDAV upload is not in /history as alice"
    print("api suite: the API-made key works over WebDAV too, logged as alice")
