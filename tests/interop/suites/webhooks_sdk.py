"""Files.com's Python SDK manages filegate's webhook behaviors (tests/webhooks.rs runs it with
API_ADDR, ADMIN_KEY_SECRET, HOOK_URL and USER_KEY_SECRET set)."""
import os

import files_sdk
import files_sdk.error as errors
from files_sdk.models import behavior

files_sdk.base_url = f"http://{os.environ['API_ADDR']}"
files_sdk.max_network_retries = 0
files_sdk.set_api_key(os.environ["ADMIN_KEY_SECRET"])
HOOK = os.environ["HOOK_URL"]

made = behavior.create({
    "path": "sdk/orders",
    "behavior": "webhook",
    "name": "orders",
    "description": "tell fulfilment",
    "value": {"urls": [HOOK], "method": "POST", "triggers": ["create", "destroy"], "encoding": "JSON",
              "headers": {"X-Partner": "acme"}, "body": {"team": "ops"}},
})
assert isinstance(made, behavior.Behavior)
assert made.id and made.path == "sdk/orders" and made.behavior == "webhook", made.get_attributes()
assert made.value["urls"] == [HOOK] and made.value["triggers"] == ["create", "destroy"], made.value
assert len(made.value["signing_secret"]) == 64
assert made.recursive is True

found = behavior.find(made.id)
assert found.name == "orders" and "signing_secret" not in found.value

listed = list(behavior.list().auto_paging_iter())
assert [b.id for b in listed] == [made.id], [b.get_attributes() for b in listed]
for_folder = list(behavior.list_for("sdk/orders").auto_paging_iter())
assert [b.id for b in for_folder] == [made.id]
assert list(behavior.list_for("sdk").auto_paging_iter()) == []

updated = behavior.update(made.id, {"name": "orders v2", "value": {"urls": [HOOK], "method": "GET"}})
assert updated.name == "orders v2" and updated.value["method"] == "GET", updated.get_attributes()

behavior.webhook_test({"url": HOOK, "method": "POST", "body": {"hello": "sdk"}})

try:
    behavior.create({"path": "x", "behavior": "webhook", "value": {"urls": ["http://169.254.169.254/"]}})
    raise AssertionError("a metadata URL was accepted")
except errors.BadRequestError:
    pass

files_sdk.set_api_key(os.environ["USER_KEY_SECRET"])
try:
    behavior.list().auto_paging_iter().__next__()
    raise AssertionError("a non-admin listed behaviors")
except errors.NotAuthorizedError:
    pass
files_sdk.set_api_key(os.environ["ADMIN_KEY_SECRET"])

behavior.delete(made.id)
try:
    behavior.find(made.id)
    raise AssertionError("deleted behavior still found")
except errors.NotFoundError:
    pass
print("webhooks_sdk: ok")
