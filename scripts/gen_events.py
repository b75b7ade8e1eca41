#!/usr/bin/env python3
"""Writes events/: API Gateway v2 sample events, one per function and case, plus
events/manifest.json with the status each must produce. tests/tests/lambda_events.rs replays
every file through the real Lambda handler, so the samples cannot rot.

The sandbox callbacks are signed with the test secret below and stamped at the tests' clock
(T0), which the replay test sets. Re-run after changing a case: python3 scripts/gen_events.py
"""
import base64, hashlib, hmac, json, os, urllib.parse

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

T0 = 1_800_000_000
SANDBOX_SECRET = b"test-sandbox-secret"
USER = "event-user"
# Orders the replay test seeds before replaying (fixed ids, owned by USER).
SEEDED_PENDING = "01KQ0000000000000000000001"
SEEDED_TO_CANCEL = "01KQ0000000000000000000002"
SEEDED_TO_PAY = "01KQ0000000000000000000003"
SEEDED_WECHAT = "01KQ0000000000000000000004"
SEEDED_ALIPAY = "01KQ0000000000000000000005"

# Test-only keys committed under tests/fixtures/keys (never used outside tests), and the
# provider settings the replay test configures (tests/src/{wechat,alipay,huya}.rs).
KEYS = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "keys")
WECHAT_MCH_ID = "1900000109"
WECHAT_APP_ID = "wxd678efh567hg6787"
WECHAT_API_V3_KEY = b"a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb"
WECHAT_PUB_KEY_ID = "PUB_KEY_ID_0114232134912410000000000000"
ALIPAY_APP_ID = "2021000117600000"
ALIPAY_SELLER_ID = "2088102177800000"
HUYA_APP_ID = "hy-app-7788"
HUYA_EXT_SECRET = "hy-ext-secret-for-tests-only"
HUYA_EXT_UUID = "ext-uuid-1234"


def rsa_sign(key_file, message: bytes) -> str:
    with open(os.path.join(KEYS, key_file), "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()
SEEDED_DUE = "01KQ0000000000000000000006"  # expired before T0: the sweeper's

root = os.path.join(os.path.dirname(__file__), "..", "events")


def event(method, path, body=None, headers=None, sub=USER, query="", roles=None):
    ctx = {
        "accountId": "123456789012",
        "apiId": "tollgate",
        "domainName": "tollgate.execute-api.us-east-1.amazonaws.com",
        "domainPrefix": "tollgate",
        "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                 "sourceIp": "203.0.113.10", "userAgent": "sample"},
        "requestId": "sample-request",
        "routeKey": f"{method} {path}",
        "stage": "$default",
        "time": "15/Jan/2027:08:00:00 +0000",
        "timeEpoch": T0 * 1000,
    }
    if sub is not None:
        claims = {"sub": sub, "iss": "https://issuer.example.com"}
        if roles is not None:
            # The roles claim (AUTH_ROLES_CLAIM, default `scope`) as API Gateway's JWT
            # authorizer hands it over.
            claims["scope"] = roles
        ctx["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
    ev = {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {"content-type": "application/json", **(headers or {})},
        "requestContext": ctx,
        "isBase64Encoded": False,
    }
    if body is not None:
        ev["body"] = body
    return ev


def sandbox(order_id, amount, txn="sbx-sample-1", status="paid", secret=SANDBOX_SECRET):
    body = json.dumps({"order_id": order_id, "transaction_id": txn, "status": status,
                       "amount": {"amount": amount, "currency": "CNY"}, "timestamp": T0},
                      separators=(",", ":"))
    sig = hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()
    return event("POST", "/callbacks/sandbox", body, {"x-sandbox-signature": sig}, sub=None)


FIXTURES = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "apple")
APPLE_BUNDLE = "com.example.tollgate"
APPLE_APP_ID = 1234567


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def apple_jws(payload, key="leaf", chain=("leaf", "intermediate", "root")):
    """ES256 JWS under the test-only chain (tests/fixtures/apple); needs `cryptography`."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, utils
    x5c = []
    for name in chain:
        pem = open(os.path.join(FIXTURES, f"{name}.pem")).read()
        x5c.append("".join(l for l in pem.splitlines() if not l.startswith("-----")))
    header = b64url(json.dumps({"alg": "ES256", "x5c": x5c}).encode())
    body = b64url(json.dumps(payload).encode())
    pk = serialization.load_pem_private_key(open(os.path.join(FIXTURES, f"{key}.p8"), "rb").read(), None)
    der = pk.sign(f"{header}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
    r, s = utils.decode_dss_signature(der)
    return f"{header}.{body}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def apple_txn(txn_id, product="com.example.vip"):
    return {"transactionId": txn_id, "originalTransactionId": txn_id, "bundleId": APPLE_BUNDLE,
            "productId": product, "purchaseDate": (T0 - 60) * 1000, "expiresDate": (T0 + 30 * 86400) * 1000,
            "type": "Auto-Renewable Subscription", "environment": "Production", "signedDate": T0 * 1000,
            "quantity": 1}


def apple_note(kind, uuid, key="leaf", chain=("leaf", "intermediate", "root")):
    return {"signedPayload": apple_jws({
        "notificationType": kind, "notificationUUID": uuid, "version": "2.0", "signedDate": T0 * 1000,
        "data": {"appAppleId": APPLE_APP_ID, "bundleId": APPLE_BUNDLE, "environment": "Production"},
    }, key, chain)}


GOOGLE_FIXTURES = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "google")
GOOGLE_PACKAGE = "com.example.tollgate"
GOOGLE_AUDIENCE = "https://tollgate.example/notifications/google"
GOOGLE_PUSH_ACCOUNT = "rtdn@tollgate-test.iam.gserviceaccount.com"


def google_push(notification, message_id):
    """A Pub/Sub push with an OIDC token signed by the test push key (expires in 2100)."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    header = b64url(json.dumps({"alg": "RS256", "kid": "push-key-1", "typ": "JWT"}).encode())
    claims = b64url(json.dumps({"iss": "https://accounts.google.com", "aud": GOOGLE_AUDIENCE,
                                "email": GOOGLE_PUSH_ACCOUNT, "email_verified": True, "sub": "1",
                                "iat": T0, "exp": 4_102_444_800}).encode())
    key = serialization.load_pem_private_key(open(os.path.join(GOOGLE_FIXTURES, "push_key.pem"), "rb").read(), None)
    sig = key.sign(f"{header}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256())
    body = json.dumps({"message": {"data": base64.b64encode(json.dumps(notification).encode()).decode(),
                                   "messageId": message_id, "publishTime": "2027-01-15T08:00:00Z"},
                       "subscription": "projects/tollgate-test/subscriptions/play-rtdn"})
    return event("POST", "/notifications/google", body,
                 {"authorization": f"Bearer {header}.{claims}.{b64url(sig)}"}, sub=None)


def wechat(order_id, total, key_file="wechat_platform_key.pem"):
    resource = {"appid": WECHAT_APP_ID, "mchid": WECHAT_MCH_ID, "out_trade_no": order_id,
                "transaction_id": "4200000000202701150000000001", "trade_type": "NATIVE",
                "trade_state": "SUCCESS", "trade_state_desc": "支付成功", "bank_type": "OTHERS",
                "attach": "", "success_time": "2027-01-15T16:00:00+08:00",
                "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
                "amount": {"total": total, "payer_total": total, "currency": "CNY", "payer_currency": "CNY"}}
    nonce, aad = "fdasflkja484", "transaction"
    ct = AESGCM(WECHAT_API_V3_KEY).encrypt(nonce.encode(), json.dumps(resource, ensure_ascii=False).encode(), aad.encode())
    body = json.dumps({"id": "EV-2027011516000000001", "create_time": "2027-01-15T16:00:05+08:00",
                       "resource_type": "encrypt-resource", "event_type": "TRANSACTION.SUCCESS",
                       "summary": "支付成功",
                       "resource": {"original_type": "transaction", "algorithm": "AEAD_AES_256_GCM",
                                    "ciphertext": base64.b64encode(ct).decode(),
                                    "associated_data": aad, "nonce": nonce}},
                      ensure_ascii=False, separators=(",", ":"))
    wx_nonce = "5K8264ILTKCH16CQ2502SI8ZNMTM67VS"
    sig = rsa_sign(key_file, f"{T0}\n{wx_nonce}\n{body}\n".encode())
    return event("POST", "/callbacks/wechat", body,
                 {"wechatpay-timestamp": str(T0), "wechatpay-nonce": wx_nonce,
                  "wechatpay-serial": WECHAT_PUB_KEY_ID, "wechatpay-signature": sig,
                  "wechatpay-signature-type": "WECHATPAY2-SHA256-RSA2048"}, sub=None)


def alipay(order_id, total, key_file="alipay_platform_key.pem"):
    fields = {"gmt_create": "2027-01-15 16:00:00", "charset": "utf-8", "gmt_payment": "2027-01-15 16:00:30",
              "notify_time": "2027-01-15 16:00:31", "subject": "Channel pass", "buyer_id": "2088102177846880",
              "version": "1.0", "notify_id": "2027011500222160031346880000000001",
              "notify_type": "trade_status_sync", "out_trade_no": order_id, "total_amount": total,
              "trade_status": "TRADE_SUCCESS", "trade_no": "2027011522001446880000000001",
              "auth_app_id": ALIPAY_APP_ID, "receipt_amount": total, "app_id": ALIPAY_APP_ID,
              "buyer_pay_amount": total, "sign_type": "RSA2", "seller_id": ALIPAY_SELLER_ID}
    content = "&".join(f"{k}={v}" for k, v in sorted(fields.items()) if k not in ("sign", "sign_type") and v)
    fields["sign"] = rsa_sign(key_file, content.encode())
    body = urllib.parse.urlencode(fields)
    return event("POST", "/callbacks/alipay", body,
                 {"content-type": "application/x-www-form-urlencoded; charset=utf-8"}, sub=None)


def huya(order_id, ts, secret=HUYA_EXT_SECRET):
    fields = [("goodsUuid", "hy-pass"), ("orderTime", "20270115160000"), ("orderId", order_id),
              ("extUuid", HUYA_EXT_UUID), ("profileId", "hy-event-profile"), ("expenseLevel", "1"),
              ("timestamp", str(ts))]
    data = "{" + ",".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in fields) + "}"
    auth = hashlib.md5(f"{HUYA_APP_ID}{ts}{data}{secret}".encode()).hexdigest().upper()
    ev = event("GET", "/callbacks/huya", None, {"authorization": auth}, sub=None,
               query=urllib.parse.urlencode(fields))
    ev["headers"].pop("content-type", None)
    return ev


cases = [
    ("create-order", "create.json", 201,
     event("POST", "/orders", json.dumps({"product_id": "pass", "plan_id": "7d", "provider": "sandbox"}),
           {"idempotency-key": "sample-key-1"})),
    ("create-order", "create-unknown-product.json", 422,
     event("POST", "/orders", json.dumps({"product_id": "nope", "provider": "sandbox"}))),
    ("create-order", "create-malformed.json", 400, event("POST", "/orders", "{not json")),
    ("create-order", "create-unauthenticated.json", 401,
     event("POST", "/orders", json.dumps({"product_id": "coins-100", "provider": "sandbox"}), sub=None)),
    ("create-order", "get-order.json", 200, event("GET", f"/orders/{SEEDED_PENDING}")),
    ("create-order", "get-order-of-another-user.json", 404,
     event("GET", f"/orders/{SEEDED_PENDING}", sub="someone-else")),
    ("create-order", "cancel-order.json", 200, event("POST", f"/orders/{SEEDED_TO_CANCEL}/cancel")),
    # The paywall's catalog: no credentials, cacheable.
    ("create-order", "products.json", 200, event("GET", "/products", sub=None)),
    ("create-order", "streams.json", 200, event("GET", "/streams", sub=None)),
    # Operators (a bearer token whose `scope` names the role): a refund of an order not paid
    # is refused, and support may not refund.
    ("create-order", "admin-refund-unpaid.json", 422,
     event("POST", f"/admin/orders/{SEEDED_PENDING}/refunds", json.dumps({"reason": "stream broke"}),
           {"idempotency-key": "sample-refund-1"}, sub="ops", roles="tollgate:admin")),
    ("create-order", "admin-refund-by-support.json", 403,
     event("POST", f"/admin/orders/{SEEDED_PENDING}/refunds", json.dumps({"reason": "stream broke"}),
           {"idempotency-key": "sample-refund-2"}, sub="helpdesk", roles="tollgate:support")),
    ("provider-callback", "sandbox-paid.json", 200, sandbox(SEEDED_TO_PAY, 900)),
    ("provider-callback", "sandbox-forged.json", 401, sandbox(SEEDED_TO_PAY, 900, secret=b"forged")),
    ("provider-callback", "sandbox-wrong-amount.json", 422, sandbox(SEEDED_TO_PAY, 1, txn="sbx-sample-2")),
    ("provider-callback", "sandbox-unknown-order.json", 404, sandbox("01KQ000000000000000000000Z", 900)),
    ("provider-callback", "wechat-paid.json", 204, wechat(SEEDED_WECHAT, 900)),
    ("provider-callback", "wechat-forged.json", 401, wechat(SEEDED_WECHAT, 900, key_file="alipay_platform_key.pem")),
    ("provider-callback", "alipay-paid.json", 200, alipay(SEEDED_ALIPAY, "9.00")),
    ("provider-callback", "alipay-wrong-amount.json", 422, alipay(SEEDED_ALIPAY, "0.01")),
    ("provider-callback", "huya-paid.json", 200, huya("HY-EVENT-1", T0)),
    ("provider-callback", "huya-stale.json", 401, huya("HY-EVENT-2", T0 - 3600)),
    ("stream-token", "entitlements.json", 200, event("GET", "/entitlements")),
    ("stream-token", "entitlement-product.json", 200, event("GET", "/entitlements/pass")),
    ("stream-token", "entitlements-unauthenticated.json", 401, event("GET", "/entitlements", sub=None)),
    # USER holds no ticket for the concert, so the first token is its free preview.
    ("stream-token", "token-preview.json", 201,
     event("POST", "/streams/concert/tokens", json.dumps({"device_id": "phone-1"}))),
    ("stream-token", "token-unknown-stream.json", 404,
     event("POST", "/streams/nope/tokens", json.dumps({"device_id": "phone-1"}))),
    ("stream-token", "token-format-not-configured.json", 422,
     event("POST", "/streams/concert/tokens", json.dumps({"device_id": "phone-1", "format": "aliyun"}))),
    ("stream-token", "token-unauthenticated.json", 401,
     event("POST", "/streams/concert/tokens", json.dumps({"device_id": "phone-1"}), sub=None)),
    # Media-server hooks (no JWT). A valid token needs a live session, which only an issue
    # creates, so the samples show the refusals; tests/tests/http_streams.rs covers both.
    ("stream-token", "verify-srs-on-play-denied.json", 403,
     event("POST", "/streams/verify", json.dumps({
         "action": "on_play", "client_id": "3g2x", "ip": "198.51.100.7", "vhost": "__defaultVhost__",
         "app": "live", "stream": "concert", "param": "?token=v1.t1.forged.forged"}), sub=None)),
    ("stream-token", "verify-mediamtx-denied.json", 403,
     event("POST", "/streams/verify", json.dumps({
         "user": "", "password": "", "token": "", "ip": "198.51.100.7", "action": "read",
         "path": "live/concert", "protocol": "hls", "id": None, "query": "token=expired"}), sub=None)),
    ("stream-token", "verify-auth-request-denied.json", 403,
     event("POST", "/streams/verify", None, {"x-original-uri": "/live/concert.m3u8"}, sub=None)),
    # Operators: a promotion, coins and the audit trail they leave; a viewer may do none of it.
    ("stream-token", "admin-grant.json", 201,
     event("POST", f"/admin/users/{USER}/grants",
           json.dumps({"product_id": "pass", "days": 30, "reason": "sample promotion"}),
           {"idempotency-key": "sample-promo-1"}, sub="ops", roles="tollgate:admin")),
    ("stream-token", "admin-grant-by-viewer.json", 403,
     event("POST", f"/admin/users/{USER}/grants",
           json.dumps({"product_id": "pass", "days": 30, "reason": "sample promotion"}),
           {"idempotency-key": "sample-promo-2"})),
    ("stream-token", "admin-wallet.json", 201,
     event("POST", f"/admin/users/{USER}/wallet", json.dumps({"amount": 100, "reason": "sample goodwill"}),
           {"idempotency-key": "sample-coins-1"}, sub="ops", roles="tollgate:admin")),
    # The viewer's coins: the 100 just given, a gift from them, a gift they cannot afford.
    ("stream-token", "wallet.json", 200, event("GET", "/wallet")),
    ("stream-token", "wallet-debit.json", 201,
     event("POST", "/wallet/debits", json.dumps({"amount": 30, "reason": "gift: rocket", "reference": "gift-42"}),
           {"idempotency-key": "sample-gift-1"})),
    ("stream-token", "wallet-debit-short.json", 402,
     event("POST", "/wallet/debits", json.dumps({"amount": 1000, "reason": "gift: castle", "reference": "gift-43"}),
           {"idempotency-key": "sample-gift-2"})),
    ("stream-token", "admin-audit.json", 200,
     event("GET", "/admin/audit", query=f"user_id={USER}", sub="helpdesk", roles="tollgate:support")),
    # After the stream samples: the App Store sample grants channel:vip, which opens the concert.
    ("store-notifications", "apple-purchase.json", 200,
     event("POST", "/purchases/apple", json.dumps({"signed_transaction": apple_jws(apple_txn("700001"))}))),
    ("store-notifications", "apple-purchase-wrong-oid.json", 400,
     event("POST", "/purchases/apple", json.dumps({"signed_transaction": apple_jws(
         apple_txn("700002"), "leaf_nooid", ("leaf_nooid", "intermediate", "root"))}))),
    ("store-notifications", "apple-purchase-unauthenticated.json", 401,
     event("POST", "/purchases/apple", json.dumps({"signed_transaction": "x.y.z"}), sub=None)),
    ("store-notifications", "apple-notification-test.json", 200,
     event("POST", "/notifications/apple", json.dumps(apple_note("TEST", "5e0a1d7e-0000-4000-8000-000000000001")), sub=None)),
    ("store-notifications", "apple-notification-chain-of-2.json", 400,
     event("POST", "/notifications/apple", json.dumps(apple_note(
         "TEST", "5e0a1d7e-0000-4000-8000-000000000002", chain=("leaf", "intermediate"))), sub=None)),
    ("store-notifications", "google-purchase.json", 202,
     event("POST", "/purchases/google", json.dumps({"purchase_token": "sample-play-token", "product_id": "vip_monthly"}))),
    ("store-notifications", "google-purchase-unknown-product.json", 400,
     event("POST", "/purchases/google", json.dumps({"purchase_token": "sample-play-token", "product_id": "nope"}))),
    ("store-notifications", "google-push-test.json", 200,
     google_push({"version": "1.0", "packageName": GOOGLE_PACKAGE, "eventTimeMillis": str(T0 * 1000),
                  "testNotification": {"version": "1.0"}}, "sample-message-1")),
    ("store-notifications", "google-push-renewal.json", 200,
     google_push({"version": "1.0", "packageName": GOOGLE_PACKAGE, "eventTimeMillis": str(T0 * 1000),
                  "subscriptionNotification": {"version": "1.0", "notificationType": 2,
                                               "purchaseToken": "sample-play-token", "subscriptionId": "vip_monthly"}},
                 "sample-message-2")),
    ("store-notifications", "google-push-unauthenticated.json", 401,
     event("POST", "/notifications/google", json.dumps({"message": {"data": "e30=", "messageId": "x"}}), sub=None)),
]

# Non-HTTP functions: what the replay checks is named in the manifest entry.
scheduled = {
    "version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa", "detail-type": "Scheduled Event",
    "source": "aws.events", "account": "123456789012", "time": "2027-01-15T08:00:00Z",
    "region": "us-east-1", "resources": ["arn:aws:events:us-east-1:123456789012:rule/tollgate-sweeper"],
    "detail": {},
}


def sqs_record(i, body, receives="1"):
    return {
        "messageId": f"0000000{i}-5d0b-4ffc-9b5d-0f0f0f0f0f0f", "receiptHandle": f"receipt-{i}",
        "body": body, "attributes": {"ApproximateReceiveCount": receives, "SentTimestamp": str(T0 * 1000),
                                      "SenderId": "AIDAEXAMPLE", "ApproximateFirstReceiveTimestamp": str(T0 * 1000)},
        "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:tollgate-jobs", "awsRegion": "us-east-1",
    }


sqs_batch = {"Records": [
    sqs_record(1, json.dumps({"kind": "requery_order", "order_id": SEEDED_PENDING})),
    # Poison: with no DEAD_LETTER_QUEUE_URL it is reported failed, and SQS's redrive parks it.
    sqs_record(2, '{"kind":"unknown"}'),
]}


def event_id(kind, subject):
    return "evt_" + hashlib.sha256(f"{kind}\n{subject}".encode()).hexdigest()[:32]


def stream_record(i, name, image):
    return {
        "eventID": f"c4ca4238a0b923820dcc509a6f75849{i}", "eventName": name, "eventVersion": "1.1",
        "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
        "dynamodb": {"ApproximateCreationDateTime": T0, "Keys": {"pk": image["pk"], "sk": image["sk"]},
                     "NewImage": image, "SequenceNumber": f"1000000000000000000000{i}", "SizeBytes": 600,
                     "StreamViewType": "NEW_IMAGE"},
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/tollgate/stream/2027-01-15T08:00:00.000",
    }


# The order.created event of a seeded order, as the table's stream hands it to the dispatcher
# (the replay's catalog has no webhooks: read, nothing to send), and the dispatcher's own
# state write coming back as a MODIFY, which it ignores.
created = event_id("order.created", SEEDED_PENDING)
event_image = {"pk": {"S": f"EVENT#{created}"}, "sk": {"S": "EVENT"}, "record": {"S": "EVENT"},
               "id": {"S": created}, "type": {"S": "order.created"}, "occurred_at": {"N": str(T0)},
               "user_id": {"S": USER}, "deliveries": {"S": "{}"}, "version": {"N": "0"}}
stream_batch = {"Records": [stream_record(1, "INSERT", event_image), stream_record(2, "MODIFY", event_image)]}
# A wake-up on the webhook retry queue; the replay has no retry queue to hand it back to, so it
# is reported failed (SQS gives it again).
retry_batch = {"Records": [dict(sqs_record(1, json.dumps({"event_id": created})),
                                eventSourceARN="arn:aws:sqs:us-east-1:123456789012:tollgate-webhooks")]}

manifest = []
for function, name, expect, ev in [
    ("sweeper", "scheduled.json", {"expired": 1}, scheduled),
    ("verifier", "batch.json", {"batch_item_failures": 1}, sqs_batch),
    ("dispatcher", "stream.json", {"batch_item_failures": 0}, stream_batch),
    ("dispatcher", "retry.json", {"batch_item_failures": 1}, retry_batch),
]:
    os.makedirs(os.path.join(root, function), exist_ok=True)
    with open(os.path.join(root, function, name), "w") as f:
        json.dump(ev, f, indent=2)
        f.write("\n")
    manifest.append({"function": function, "file": f"{function}/{name}", **expect})
for function, name, status, ev in cases:
    os.makedirs(os.path.join(root, function), exist_ok=True)
    with open(os.path.join(root, function, name), "w") as f:
        json.dump(ev, f, indent=2)
        f.write("\n")
    manifest.append({"function": function, "file": f"{function}/{name}", "status": status})
with open(os.path.join(root, "manifest.json"), "w") as f:
    json.dump(manifest, f, indent=2)
    f.write("\n")
print(f"wrote {len(manifest)} events")
