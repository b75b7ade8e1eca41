//! `template.yaml` as deployed: each function's environment fits Lambda's 4 KB with every
//! provider enabled and realistic secret references, each function may read exactly the
//! secret references it is given, each function's DynamoDB actions are those of the
//! store calls its routes or jobs reach in the code, and the admin routes are on both APIs
//! (IAM and operators' JWTs) as `openapi.yaml` lists them.

use serde_yaml::Value;
use std::collections::{BTreeMap, BTreeSet};

use tollgate_tests::template_routes::template;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// The variables whose value may be a reference (resolved at start-up) rather than the secret:
/// the runtime's own list.
const SECRET_VARS: &[&str] = tollgate::secret_refs::SECRET_VARIABLES;

/// A production deployment with every provider on: long stack, account and secret names,
/// JSON-key references, SSM names, a catalog in S3.
fn production_parameters() -> BTreeMap<&'static str, String> {
    let sm = |name: &str, key: &str| {
        format!("arn:aws:secretsmanager:ap-southeast-1:123456789012:secret:tollgate/production/{name}-Ab12Cd:{key}")
    };
    let api = "https://api.payments.tollgate-example.com";
    BTreeMap::from([
        (
            "Providers",
            "sandbox,wechat,alipay,huya,apple,google".into(),
        ),
        (
            "CatalogS3Uri",
            "s3://tollgate-production-config-123456789012/catalog/catalog.json".into(),
        ),
        (
            "SandboxSecret",
            "ssm:/tollgate/production/sandbox/callback-secret".into(),
        ),
        ("StreamSigningKeys", sm("streams", "signing_keys")),
        (
            "NginxSecureLinkSecret",
            sm("streams", "nginx_secure_link_secret"),
        ),
        ("TencentPlayKey", sm("streams", "tencent_play_key")),
        ("AliyunAuthKey", sm("streams", "aliyun_auth_key")),
        ("WechatPayApiV3Key", sm("wechatpay", "api_v3_key")),
        (
            "WechatPayMerchantPrivateKey",
            sm("wechatpay", "merchant_private_key"),
        ),
        (
            "WechatPayPlatformKeys",
            sm("wechatpay", "platform_public_keys"),
        ),
        ("AlipayAppPrivateKey", sm("alipay", "app_private_key")),
        (
            "AlipayPublicKey",
            "ssm:/tollgate/production/alipay/alipay-public-key".into(),
        ),
        ("HuyaExtSecret", sm("huya", "ext_secret")),
        (
            "GoogleServiceAccountJson",
            sm("google-play-service-account", "key_json"),
        ),
        (
            "SecretsKmsKeyArn",
            "arn:aws:kms:ap-southeast-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
                .into(),
        ),
        ("WechatPayMchId", "1900012345".into()),
        ("WechatPayAppId", "wx8888888888888888".into()),
        (
            "WechatPayMerchantSerial",
            "5157F09EFDC096DE15EBE81A47057A7232F1B8E1".into(),
        ),
        ("WechatPayNotifyUrl", format!("{api}/callbacks/wechat")),
        ("AlipayAppId", "2021004123456789".into()),
        ("AlipaySellerId", "2088123456789012".into()),
        ("AlipayNotifyUrl", format!("{api}/callbacks/alipay")),
        (
            "AlipayReturnUrl",
            "https://www.tollgate-example.com/payments/alipay/return".into(),
        ),
        ("HuyaAppId", "huya-mini-app-1234567".into()),
        (
            "HuyaExtUuid",
            "ext-uuid-0123456789abcdef,ext-uuid-fedcba9876543210".into(),
        ),
        (
            "AppleBundleId",
            "com.tollgate-example.livestreams.ios".into(),
        ),
        ("AppleAppAppleId", "1234567890".into()),
        ("AppleEnvironment", "Production,Sandbox".into()),
        (
            "GooglePackageName",
            "com.tollgateexample.livestreams.android".into(),
        ),
        ("GooglePushAudience", format!("{api}/notifications/google")),
        (
            "GooglePushServiceAccount",
            "play-rtdn-push@tollgate-production-412345.iam.gserviceaccount.com".into(),
        ),
    ])
}

/// What `Ref` / `Fn::GetAtt` of the stack's resources evaluate to, at production lengths.
fn resource_value(name: &str) -> String {
    let queue = |q: &str| {
        format!("https://sqs.ap-southeast-1.amazonaws.com/123456789012/tollgate-production-{q}-Xy12AbCdEf34")
    };
    match name {
        "Table" => "tollgate-production-Table-1QW2ER3TY4UI5".into(),
        "Queue" => queue("Queue"),
        "DeadLetterQueue" => queue("DeadLetterQueue"),
        "WebhookQueue" => queue("WebhookQueue"),
        "WebhookDeadLetterQueue" => queue("WebhookDeadLetterQueue"),
        other => {
            format!("arn:aws:iam::123456789012:policy/tollgate-production-{other}-A1B2C3D4E5F6")
        }
    }
}

/// A small evaluator of the intrinsic functions the template uses, with every parameter
/// at its given or default value.
struct Stack {
    doc: Value,
    params: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, PartialEq)]
enum V {
    S(String),
    L(Vec<String>),
    NoValue,
}

impl V {
    fn s(self) -> String {
        match self {
            V::S(s) => s,
            other => panic!("expected a string, got {other:?}"),
        }
    }
}

fn tag_of(v: &Value) -> Option<(String, &Value)> {
    match v {
        Value::Tagged(t) => Some((
            t.tag.to_string().trim_start_matches('!').to_owned(),
            &t.value,
        )),
        Value::Mapping(m) if m.len() == 1 => {
            let (k, v) = m.iter().next()?;
            let k = k.as_str()?;
            (k.starts_with("Fn::") || k == "Ref" || k == "Condition")
                .then(|| (k.trim_start_matches("Fn::").to_owned(), v))
        }
        _ => None,
    }
}

impl Stack {
    fn new(given: &BTreeMap<&str, String>) -> Self {
        let doc = template();
        let mut params = BTreeMap::new();
        for (name, spec) in doc["Parameters"].as_mapping().unwrap() {
            let name = name.as_str().unwrap().to_owned();
            let value = match given.get(name.as_str()) {
                Some(v) => Value::String(v.clone()),
                None => match &spec["Default"] {
                    Value::Number(n) => Value::String(n.to_string()),
                    Value::Null => Value::String(String::new()),
                    v => v.clone(),
                },
            };
            params.insert(name, value);
        }
        for name in given.keys() {
            assert!(params.contains_key(*name), "no parameter {name}");
        }
        Stack { doc, params }
    }

    fn param(&self, name: &str) -> V {
        let spec = &self.doc["Parameters"][name];
        let value = self.params[name].as_str().unwrap_or_default().to_owned();
        if spec["Type"].as_str() == Some("CommaDelimitedList") {
            V::L(value.split(',').map(|s| s.trim().to_owned()).collect())
        } else {
            V::S(value)
        }
    }

    fn reference(&self, name: &str) -> V {
        match name {
            "AWS::NoValue" => V::NoValue,
            "AWS::Region" => V::S("ap-southeast-1".into()),
            "AWS::AccountId" => V::S("123456789012".into()),
            "AWS::Partition" => V::S("aws".into()),
            "AWS::StackName" => V::S("tollgate-production".into()),
            "AWS::URLSuffix" => V::S("amazonaws.com".into()),
            n if self.params.contains_key(n) => self.param(n),
            n => V::S(resource_value(n)),
        }
    }

    fn condition(&self, name: &str) -> bool {
        let c = self.doc["Conditions"][name].clone();
        assert!(!c.is_null(), "no condition {name}");
        self.truth(&c)
    }

    fn truth(&self, v: &Value) -> bool {
        let (f, arg) = tag_of(v).unwrap_or_else(|| panic!("not a condition: {v:?}"));
        let args = || arg.as_sequence().unwrap();
        match f.as_str() {
            "Condition" => self.condition(arg.as_str().unwrap()),
            "Not" => !self.truth(&args()[0]),
            "Or" => args().iter().any(|a| self.truth(a)),
            "And" => args().iter().all(|a| self.truth(a)),
            "Equals" => self.eval(&args()[0]) == self.eval(&args()[1]),
            other => panic!("condition function {other}"),
        }
    }

    fn eval(&self, v: &Value) -> V {
        if let Some((f, arg)) = tag_of(v) {
            let args = || arg.as_sequence().unwrap();
            return match f.as_str() {
                "Ref" => self.reference(arg.as_str().unwrap()),
                "GetAtt" => {
                    let target = arg
                        .as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| args()[0].as_str().unwrap().to_owned());
                    V::S(resource_value(target.split('.').next().unwrap()))
                }
                "If" => {
                    if self.condition(args()[0].as_str().unwrap()) {
                        self.eval(&args()[1])
                    } else {
                        self.eval(&args()[2])
                    }
                }
                "Join" => {
                    let sep = self.eval(&args()[0]).s();
                    let parts = match self.eval(&args()[1]) {
                        V::L(l) => l,
                        other => panic!("Join of {other:?}"),
                    };
                    V::S(parts.join(&sep))
                }
                "Split" => {
                    let sep = self.eval(&args()[0]).s();
                    V::L(
                        self.eval(&args()[1])
                            .s()
                            .split(&sep)
                            .map(str::to_owned)
                            .collect(),
                    )
                }
                "Select" => {
                    let i: usize = self.eval(&args()[0]).s().parse().unwrap();
                    match self.eval(&args()[1]) {
                        V::L(l) => V::S(l[i].clone()),
                        other => panic!("Select of {other:?}"),
                    }
                }
                "Sub" => {
                    let (text, vars) = match arg {
                        Value::String(s) => (s.clone(), BTreeMap::new()),
                        _ => {
                            let vars = args()[1]
                                .as_mapping()
                                .unwrap()
                                .iter()
                                .map(|(k, v)| (k.as_str().unwrap().to_owned(), self.eval(v).s()))
                                .collect();
                            (args()[0].as_str().unwrap().to_owned(), vars)
                        }
                    };
                    let mut out = String::new();
                    let mut rest = text.as_str();
                    while let Some(i) = rest.find("${") {
                        out.push_str(&rest[..i]);
                        let end = rest[i..].find('}').unwrap() + i;
                        let name = &rest[i + 2..end];
                        out.push_str(&match vars.get(name) {
                            Some(v) => v.clone(),
                            None => self.reference(name.split('.').next().unwrap()).s(),
                        });
                        rest = &rest[end + 1..];
                    }
                    out.push_str(rest);
                    V::S(out)
                }
                other => panic!("intrinsic {other} not understood by this test"),
            };
        }
        match v {
            Value::String(s) => V::S(s.clone()),
            Value::Number(n) => V::S(n.to_string()),
            Value::Bool(b) => V::S(b.to_string()),
            Value::Sequence(items) => V::L(
                items
                    .iter()
                    .map(|i| self.eval(i))
                    .filter(|i| *i != V::NoValue)
                    .map(V::s)
                    .collect(),
            ),
            other => panic!("cannot evaluate {other:?}"),
        }
    }

    fn functions(&self) -> Vec<(String, Value)> {
        self.doc["Resources"]
            .as_mapping()
            .unwrap()
            .iter()
            .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Serverless::Function"))
            .map(|(k, r)| {
                (
                    r["Metadata"]["BuildProperties"]["Binary"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{k:?} has no Binary"))
                        .to_owned(),
                    r.clone(),
                )
            })
            .collect()
    }

    /// A function's environment as deployed: Globals, then its own variables.
    fn environment(&self, function: &Value) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        for source in [
            &self.doc["Globals"]["Function"]["Environment"]["Variables"],
            &function["Properties"]["Environment"]["Variables"],
        ] {
            for (k, v) in source.as_mapping().into_iter().flatten() {
                let k = k.as_str().unwrap().to_owned();
                match self.eval(v) {
                    V::S(s) => {
                        env.insert(k, s);
                    }
                    V::NoValue => {
                        env.remove(&k);
                    }
                    V::L(_) => panic!("{k} is a list"),
                }
            }
        }
        env
    }

    /// The managed policies attached to a function (a `!If` with a false condition drops one).
    fn attached_policies(&self, function: &Value) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for p in function["Properties"]["Policies"].as_sequence().unwrap() {
            if p.get("Statement").is_some() {
                continue;
            }
            let (f, arg) = tag_of(p).unwrap();
            let target = match f.as_str() {
                "Ref" => Some(arg.as_str().unwrap().to_owned()),
                "If" => {
                    let a = arg.as_sequence().unwrap();
                    let pick = if self.condition(a[0].as_str().unwrap()) {
                        &a[1]
                    } else {
                        &a[2]
                    };
                    match tag_of(pick) {
                        Some((f, n)) if f == "Ref" && n.as_str() != Some("AWS::NoValue") => {
                            Some(n.as_str().unwrap().to_owned())
                        }
                        _ => None,
                    }
                }
                other => panic!("policy {other}"),
            };
            out.extend(target);
        }
        out
    }

    /// The inline statements of a function's policy, by Sid.
    fn statements(&self, function: &Value) -> BTreeMap<String, (BTreeSet<String>, String)> {
        let mut out = BTreeMap::new();
        for p in function["Properties"]["Policies"].as_sequence().unwrap() {
            for s in p["Statement"].as_sequence().into_iter().flatten() {
                let actions = match self.eval(&s["Action"]) {
                    V::S(a) => BTreeSet::from([a]),
                    V::L(l) => l.into_iter().collect(),
                    V::NoValue => BTreeSet::new(),
                };
                let resource = self.eval(&s["Resource"]).s();
                out.insert(s["Sid"].as_str().unwrap().to_owned(), (actions, resource));
            }
        }
        out
    }
}

/// Every parameter a value mentions (`!Ref X`, `${X}`).
fn parameters_in(v: &Value, stack: &Stack, out: &mut BTreeSet<String>) {
    match v {
        Value::String(s) => {
            let mut rest = s.as_str();
            while let Some(i) = rest.find("${") {
                let end = rest[i..].find('}').unwrap() + i;
                let name = &rest[i + 2..end];
                if stack.params.contains_key(name) {
                    out.insert(name.to_owned());
                }
                rest = &rest[end + 1..];
            }
            if stack.params.contains_key(s.as_str()) {
                out.insert(s.clone());
            }
        }
        Value::Tagged(t) => parameters_in(&t.value, stack, out),
        Value::Sequence(items) => items.iter().for_each(|i| parameters_in(i, stack, out)),
        Value::Mapping(m) => m.iter().for_each(|(_, v)| parameters_in(v, stack, out)),
        _ => {}
    }
}

#[test]
fn every_environment_fits_in_4_kb_with_room_to_spare() {
    for (label, mut given) in [
        ("catalog in S3", production_parameters()),
        ("inline default catalog", production_parameters()),
    ] {
        if label == "inline default catalog" {
            given.remove("CatalogS3Uri");
        }
        let stack = Stack::new(&given);
        for (name, f) in stack.functions() {
            let env = stack.environment(&f);
            // Lambda counts the keys and values of all variables together against 4 KB.
            let size: usize = env.iter().map(|(k, v)| k.len() + v.len()).sum();
            println!("{label}: {name}: {} variables, {size} bytes", env.len());
            assert!(
                size <= 3 * 1024,
                "{name} ({label}): {size} bytes of environment; keep at least 1 KB of Lambda's 4 KB free"
            );
            for var in SECRET_VARS {
                if let Some(v) = env.get(*var).filter(|v| !v.is_empty()) {
                    assert!(
                        v.starts_with("arn:aws:secretsmanager:") || v.starts_with("ssm:/"),
                        "{name}: {var} is not a reference"
                    );
                }
            }
        }
    }
}

/// Each function may read exactly the references in its environment, and the catalog.
#[test]
fn each_function_reads_exactly_the_secret_references_it_is_given() {
    for given in [production_parameters(), BTreeMap::new()] {
        let mut given = given;
        given
            .entry("StreamSigningKeys")
            .or_insert_with(|| "ssm:/t/stream-keys".into());
        let stack = Stack::new(&given);
        for (name, f) in stack.functions() {
            let env = stack.environment(&f);
            let mut given_refs = BTreeSet::new();
            for (var, v) in f["Properties"]["Environment"]["Variables"]
                .as_mapping()
                .unwrap()
            {
                let var = var.as_str().unwrap();
                if SECRET_VARS.contains(&var) && !env[var].is_empty() {
                    parameters_in(v, &stack, &mut given_refs);
                }
            }
            let mut readable = BTreeSet::new();
            let mut reads_catalog = false;
            for policy in stack.attached_policies(&f) {
                let resource = &stack.doc["Resources"][policy.as_str()];
                assert_eq!(resource["Type"].as_str(), Some("AWS::IAM::ManagedPolicy"));
                for s in resource["Properties"]["PolicyDocument"]["Statement"]
                    .as_sequence()
                    .unwrap()
                {
                    match s["Sid"].as_str() {
                        Some("ReadReferences") => {
                            // Only the resources whose `!If` holds in this deployment.
                            let arns = match stack.eval(&s["Resource"]) {
                                V::L(l) => l,
                                V::S(s) => vec![s],
                                V::NoValue => vec![],
                            };
                            for item in s["Resource"]
                                .as_sequence()
                                .map(|v| v.to_vec())
                                .unwrap_or_else(|| vec![s["Resource"].clone()])
                            {
                                let mut ps = BTreeSet::new();
                                parameters_in(&item, &stack, &mut ps);
                                ps.retain(|p| !stack.param(p).s().is_empty());
                                readable.extend(ps);
                            }
                            for arn in arns {
                                assert!(
                                    arn.starts_with("arn:aws:secretsmanager:ap-southeast-1:123456789012:secret:")
                                        && arn.matches(':').count() == 6
                                        || arn.starts_with("arn:aws:ssm:ap-southeast-1:123456789012:parameter/")
                                            && !arn.contains("//"),
                                    "{name}: {arn} is not the ARN of one secret or parameter"
                                );
                            }
                        }
                        Some("ReadCatalog") => {
                            assert_eq!(
                                stack.eval(&s["Resource"]).s(),
                                "arn:aws:s3:::tollgate-production-config-123456789012/catalog/catalog.json"
                            );
                            reads_catalog = true;
                        }
                        _ => {}
                    }
                }
            }
            assert_eq!(readable, given_refs, "{name}: references readable vs given");
            assert_eq!(
                reads_catalog,
                env.contains_key("CATALOG_S3_URI"),
                "{name}: catalog"
            );
        }
    }
}

/// The DynamoDB IAM actions each store method needs (read from `shared/src/store/dynamo`):
/// a transaction is authorised per item, by the item's own action.
const STORE_ACTIONS: &[(&str, &[&str])] = &[
    // Put order + idempotency key, Update of the day's counter; a replay reads the key.
    ("create_order", &["PutItem", "UpdateItem", "GetItem"]),
    // As create_order, with the Put of the lifetime claim; a refusal may read the claim.
    (
        "create_lifetime_order",
        &["PutItem", "UpdateItem", "GetItem"],
    ),
    // A conditional Update of the claim.
    ("release_lifetime_claim", &["UpdateItem"]),
    ("get_idempotency", &["GetItem"]),
    ("get_order", &["GetItem"]),
    // Update of the order; Put of the TXN claim, grants and payment record; Updates of
    // wallet and counters.
    ("settle", &["PutItem", "UpdateItem"]),
    ("settle_new_order", &["PutItem", "UpdateItem"]),
    // The order's Update and its event record's Put: one transaction.
    ("close_order", &["UpdateItem", "PutItem"]),
    ("count_refund", &["UpdateItem", "PutItem"]),
    ("refund", &["UpdateItem", "PutItem"]),
    ("defer_due", &["UpdateItem"]),
    ("mark_requery", &["UpdateItem"]),
    ("record_error", &["UpdateItem"]),
    ("day_records", &["Query", "BatchGetItem"]),
    ("due_orders", &["Query on gsi1"]),
    ("user_items", &["Query"]),
    // The whole partition, archive included.
    ("user_history", &["Query"]),
    // One transaction: Put of the checkpoint and of moved grants, Delete of their old keys.
    ("fold_grants", &["PutItem", "DeleteItem"]),
    // Conditional Put of SESSIONS; after a lost race, read it again.
    ("put_sessions", &["PutItem", "GetItem"]),
    // The same Put with the day counters' Update in one transaction (a first access); after
    // a lost race, read it again.
    (
        "put_sessions_counted",
        &["PutItem", "UpdateItem", "GetItem"],
    ),
    // One Update of the day's and provider's own item, on the refusal path only.
    ("count_rejection", &["UpdateItem"]),
    ("get_purchase", &["GetItem"]),
    ("put_purchase", &["PutItem"]),
    // The purchase and grants, its events (Puts); the day's counters (Update).
    ("put_purchase_change", &["PutItem", "UpdateItem"]),
    ("put_events", &["PutItem"]),
    ("note_seen", &["GetItem"]),
    ("record_note", &["PutItem"]),
    // Operators' changes: the change and its audit record (a Put) in one transaction; after
    // a failed condition, the item as stored is read when the emulator omits it.
    ("put_ban", &["PutItem", "GetItem"]),
    ("lift_ban", &["DeleteItem", "PutItem", "GetItem"]),
    ("publish_key", &["GetItem"]),
    ("rotate_publish_key", &["PutItem", "GetItem"]),
    ("grant", &["PutItem", "GetItem"]),
    ("revoke_grants", &["PutItem"]),
    ("adjust_wallet", &["UpdateItem", "PutItem", "GetItem"]),
    ("admin_key", &["GetItem"]),
    ("user_audit", &["Query"]),
    ("audit_since", &["Query on gsi3"]),
    // The TXN# claim of a provider transaction.
    ("order_for_txn", &["GetItem"]),
    ("user_orders", &["Query on gsi2"]),
    // The order back to PAID, its grants un-revoked, its coins back: one transaction.
    ("reverse_refund", &["UpdateItem"]),
    ("claim_marker", &["PutItem"]),
    ("release_marker", &["DeleteItem"]),
    // Put of the REFUND# request, Update of the order's hold, Put of the audit record: one
    // transaction.
    ("request_refund", &["PutItem", "UpdateItem"]),
    ("refund_request", &["GetItem"]),
    // Update of the request; finishing it also Updates the order (one transaction).
    ("change_refund_request", &["UpdateItem"]),
    ("due_refund_requests", &["Query on gsi1"]),
    // As `refund`, the order staying PAID.
    ("count_refund_revoking", &["UpdateItem", "PutItem"]),
    // The wallet item and the newest ledger entries after it.
    ("wallet_ledger", &["Query"]),
    // Update of the wallet, Put of the key and the ledger entry: one transaction; after a
    // failed condition the key or the wallet is read when the emulator omits it.
    ("debit_wallet", &["UpdateItem", "PutItem", "GetItem"]),
    // Put of the PAID order, its grants, key, entry and payment record; Update of the wallet
    // and counters: one transaction; a replay reads the key.
    ("pay_with_coins", &["PutItem", "UpdateItem", "GetItem"]),
    // The outbox: event records by time (one query of the event index per day), and one.
    ("events_since", &["Query on gsi3"]),
    ("get_event", &["GetItem"]),
    // The dispatcher: a record's delivery state (after a failed condition, read again when
    // the emulator omits the item), and the endpoints a 410 disabled.
    ("put_event_deliveries", &["UpdateItem", "GetItem"]),
    ("disable_endpoint", &["UpdateItem"]),
    ("disabled_endpoints", &["Query"]),
    // Delete of the disabled item and Put of the audit record, in one transaction.
    ("enable_endpoint", &["DeleteItem", "PutItem"]),
];

/// The indexes a function may query, each under its own policy statement.
const INDEXES: &[(&str, &str)] = &[
    ("gsi1", "DueIndex"),
    ("gsi2", "HistoryIndex"),
    ("gsi3", "AuditIndex"),
];

/// Where each function enters the service layer (its routes in `api::handle`, or its job).
const ENTRIES: &[(&str, &[&str])] = &[
    (
        "create-order",
        &[
            "orders",
            "stats",
            "support",
            "order_history",
            "refund_requests",
        ],
    ),
    ("provider-callback", &["payments", "rejections"]),
    (
        "store-notifications",
        &["apple_purchases", "google_purchases"],
    ),
    (
        "stream-token",
        &[
            "entitlements",
            "streams",
            "moderation",
            "support",
            "manual_grants",
            "wallet",
            "audit",
            "ledger",
            "debits",
            "events",
        ],
    ),
    ("sweeper", &["sweep"]),
    ("verifier", &["jobs"]),
    ("dispatcher", &["dispatch"]),
];

/// Store methods a module-level reading over-counts: the verifier's re-query jobs use
/// `sweep::resolve`, never the sweep over the due index or the refund index; its Play jobs
/// never take or release the de-duplication marker of `POST /purchases/google`
/// (store-notifications); create-order starts refunds, and only the sweeper reads the
/// refund index.
const NOT_REACHED: &[(&str, &str)] = &[
    ("create-order", "due_refund_requests"),
    ("verifier", "due_refund_requests"),
    ("verifier", "due_orders"),
    ("verifier", "claim_marker"),
    ("verifier", "release_marker"),
    // The app stores' purchases (and the verifier's Play jobs) use `orders` only to read an
    // order and to word a refusal:
    // never a create, so never its lifetime check or an order paid with coins.
    ("store-notifications", "user_items"),
    ("store-notifications", "user_history"),
    ("store-notifications", "pay_with_coins"),
    ("verifier", "user_items"),
    ("verifier", "user_history"),
    ("verifier", "pay_with_coins"),
];

fn service_source(module: &str) -> String {
    std::fs::read_to_string(format!("{ROOT}/shared/src/service/{module}.rs")).unwrap()
}

fn dispatcher_source() -> String {
    std::fs::read_to_string(format!("{ROOT}/shared/src/webhook/deliver.rs")).unwrap()
}

/// Identifiers following `prefix` in whitespace-free source (`app.store\n.get_order(`).
fn calls_after(source: &str, prefix: &str) -> BTreeSet<String> {
    let flat: String = source.chars().filter(|c| !c.is_whitespace()).collect();
    flat.match_indices(prefix)
        .map(|(i, _)| {
            flat[i + prefix.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|s| !s.is_empty())
        .collect()
}

#[test]
fn each_function_may_make_exactly_the_dynamodb_calls_of_its_code_paths() {
    // Every store method has its actions written down above.
    let store_impl =
        std::fs::read_to_string(format!("{ROOT}/shared/src/store/dynamo/mod.rs")).unwrap();
    let impl_start = store_impl
        .find("impl Store for DynamoStore")
        .expect("impl Store");
    let methods = calls_after(&store_impl[impl_start..], "asyncfn");
    let listed: BTreeSet<String> = STORE_ACTIONS.iter().map(|(m, _)| m.to_string()).collect();
    assert_eq!(methods, listed, "store methods vs STORE_ACTIONS");

    let modules: BTreeSet<String> = std::fs::read_dir(format!("{ROOT}/shared/src/service"))
        .unwrap()
        .map(|e| {
            e.unwrap()
                .path()
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let stack = Stack::new(&production_parameters());
    let functions = stack.functions();
    assert_eq!(functions.len(), ENTRIES.len());
    for (name, f) in &functions {
        let entries = ENTRIES.iter().find(|(n, _)| n == name).unwrap().1;
        // The service modules reachable from the entries, through `super::x` / `service::x`.
        let mut reached: BTreeSet<String> = entries.iter().map(|m| m.to_string()).collect();
        let mut todo: Vec<String> = reached.iter().cloned().collect();
        while let Some(m) = todo.pop() {
            let source = service_source(&m);
            for prefix in ["super::", "service::"] {
                for next in calls_after(&source, prefix) {
                    if modules.contains(&next) && reached.insert(next.clone()) {
                        todo.push(next);
                    }
                }
            }
        }
        let mut calls: BTreeSet<String> = BTreeSet::new();
        for m in &reached {
            let source = service_source(m);
            calls.extend(calls_after(&source, "store."));
            // A module that delivers events makes the dispatcher's store calls too.
            if source.contains("Dispatcher::new") {
                calls.extend(calls_after(&dispatcher_source(), "store."));
            }
        }
        for (f_name, method) in NOT_REACHED {
            if f_name == name {
                assert!(
                    calls.remove(*method),
                    "{name}: {method} is no longer over-counted"
                );
            }
        }
        // Every function opens its connection with a GetItem at init.
        let mut table = BTreeSet::from(["dynamodb:GetItem".to_string()]);
        let mut indexes: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for call in &calls {
            let actions = STORE_ACTIONS
                .iter()
                .find(|(m, _)| m == call)
                .unwrap_or_else(|| panic!("{name}: store.{call} has no actions listed"))
                .1;
            for a in actions {
                match a.split_once(" on ") {
                    Some((a, gsi)) => indexes
                        .entry(gsi)
                        .or_default()
                        .insert(format!("dynamodb:{a}")),
                    None => table.insert(format!("dynamodb:{a}")),
                };
            }
        }
        let statements = stack.statements(f);
        let (granted, resource) = statements.get("TableItems").cloned().unwrap_or_default();
        assert_eq!(
            granted, table,
            "{name}: table actions granted vs made ({calls:?})"
        );
        assert_eq!(resource, resource_value("Table"));
        for (gsi, sid) in INDEXES {
            let made = indexes.remove(gsi).unwrap_or_default();
            let (granted_index, index_resource) = statements.get(*sid).cloned().unwrap_or_default();
            assert_eq!(granted_index, made, "{name}: {gsi} actions granted vs made");
            if !made.is_empty() {
                assert_eq!(
                    index_resource,
                    format!("{}/index/{gsi}", resource_value("Table"))
                );
            }
        }
        assert!(indexes.is_empty(), "{name}: unknown indexes {indexes:?}");
        let dynamo_elsewhere: Vec<_> = statements
            .iter()
            .filter(|(sid, (a, _))| {
                sid.as_str() != "TableItems"
                    && !INDEXES.iter().any(|(_, s)| s == sid)
                    && a.iter().any(|a| a.starts_with("dynamodb:"))
            })
            .collect();
        assert!(dynamo_elsewhere.is_empty(), "{name}: {dynamo_elsewhere:?}");
    }
}

/// The dispatcher: fed by the table's stream (inserted event records only, so its own
/// state writes never wake it), and by its retry queue; batch item failures reported on
/// both; bounded stream retries ending on the webhook dead-letter queue, whose depth alarms;
/// exactly the queue actions it makes, on exactly those queues.
#[test]
fn the_dispatcher_is_fed_by_the_stream_and_its_retry_queue_with_least_privilege() {
    let stack = Stack::new(&production_parameters());
    let doc = &stack.doc;
    let table = &doc["Resources"]["Table"]["Properties"];
    assert_eq!(
        table["StreamSpecification"]["StreamViewType"].as_str(),
        Some("NEW_IMAGE")
    );
    let (_, f) = stack
        .functions()
        .into_iter()
        .find(|(n, _)| n == "dispatcher")
        .expect("a dispatcher function");
    let events = &f["Properties"]["Events"];
    let stream = &events["EventRecords"];
    assert_eq!(stream["Type"].as_str(), Some("DynamoDB"));
    let p = &stream["Properties"];
    let filters = p["FilterCriteria"]["Filters"].as_sequence().unwrap();
    assert_eq!(filters.len(), 1);
    let pattern: serde_json::Value =
        serde_json::from_str(filters[0]["Pattern"].as_str().unwrap()).unwrap();
    assert_eq!(
        pattern,
        serde_json::json!({"eventName": ["INSERT"], "dynamodb": {"NewImage": {"record": {"S": ["EVENT"]}}}})
    );
    // The filter matches what the store writes.
    assert_eq!(tollgate::store::dynamo::EVENT_RECORD, "EVENT");
    assert_eq!(
        p["FunctionResponseTypes"][0].as_str(),
        Some("ReportBatchItemFailures")
    );
    assert_eq!(p["BisectBatchOnFunctionError"].as_bool(), Some(true));
    let retries = p["MaximumRetryAttempts"].as_i64().unwrap();
    assert!((0..=10_000).contains(&retries), "{retries}");
    assert_eq!(
        stack
            .eval(&p["DestinationConfig"]["OnFailure"]["Destination"])
            .s(),
        resource_value("WebhookDeadLetterQueue")
    );
    let sqs = &events["Retries"];
    assert_eq!(sqs["Type"].as_str(), Some("SQS"));
    assert_eq!(
        stack.eval(&sqs["Properties"]["Queue"]).s(),
        resource_value("WebhookQueue")
    );
    assert_eq!(
        sqs["Properties"]["FunctionResponseTypes"][0].as_str(),
        Some("ReportBatchItemFailures")
    );
    assert_eq!(events.as_mapping().unwrap().len(), 2);

    let env = stack.environment(&f);
    assert_eq!(env["WEBHOOK_QUEUE_URL"], resource_value("WebhookQueue"));
    assert_eq!(
        env["WEBHOOK_DEAD_LETTER_QUEUE_URL"],
        resource_value("WebhookDeadLetterQueue")
    );

    let queue_grants: BTreeMap<String, (BTreeSet<String>, String)> = stack
        .statements(&f)
        .into_iter()
        .filter(|(_, (a, _))| a.iter().any(|a| a.starts_with("sqs:")))
        .collect();
    let set = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(
        queue_grants.into_values().collect::<BTreeSet<_>>(),
        BTreeSet::from([
            (
                set(&["sqs:ChangeMessageVisibility", "sqs:SendMessage"]),
                resource_value("WebhookQueue")
            ),
            (
                set(&["sqs:SendMessage"]),
                resource_value("WebhookDeadLetterQueue")
            ),
        ])
    );
    // No other function touches the webhook queues.
    for (name, other) in stack.functions() {
        if name == "dispatcher" {
            continue;
        }
        for (sid, (_, resource)) in stack.statements(&other) {
            assert!(!resource.contains("Webhook"), "{name}: {sid} on {resource}");
        }
    }

    // The retry queue outlives the give-up period and parks on the webhook DLQ.
    let q = &doc["Resources"]["WebhookQueue"]["Properties"];
    let give_up = tollgate::webhook::deliver::RetryPolicy::default().give_up_after_s;
    assert!(q["MessageRetentionPeriod"].as_i64().unwrap() > give_up);
    assert_eq!(
        stack.eval(&q["RedrivePolicy"]["deadLetterTargetArn"]).s(),
        resource_value("WebhookDeadLetterQueue")
    );
    // Six times the function's timeout, as for every SQS-fed function.
    assert_eq!(
        q["VisibilityTimeout"].as_i64().unwrap(),
        6 * f["Properties"]["Timeout"].as_i64().unwrap()
    );
    let alarm = &doc["Resources"]["WebhookDeadLetterAlarm"]["Properties"];
    assert_eq!(
        alarm["MetricName"].as_str(),
        Some("ApproximateNumberOfMessagesVisible")
    );
    assert_eq!(
        stack.eval(&alarm["Dimensions"][0]["Value"]).s(),
        resource_value("WebhookDeadLetterQueue")
    );
}

/// The webhook secrets by reference: readable only under `WebhookSecretsPath`, only by the
/// functions that deliver (the dispatcher, and stream-token for an operator's redelivery),
/// with exactly the reader's two calls; without the path, by nobody.
#[test]
fn only_the_delivering_functions_read_webhook_secrets_under_their_path() {
    let mut given = production_parameters();
    given.insert("WebhookSecretsPath", "tollgate/production/webhooks".into());
    for (path, stack) in [
        (true, Stack::new(&given)),
        (false, Stack::new(&production_parameters())),
    ] {
        for (name, f) in stack.functions() {
            let attached = stack.attached_policies(&f).contains("WebhookSecretsRead");
            let delivers = name == "dispatcher" || name == "stream-token";
            assert_eq!(attached, path && delivers, "{name}");
        }
    }
    let stack = Stack::new(&given);
    let policy = &stack.doc["Resources"]["WebhookSecretsRead"]["Properties"]["PolicyDocument"];
    let read = policy["Statement"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|s| s["Sid"].as_str() == Some("ReadWebhookSecrets"))
        .unwrap();
    let actions: BTreeSet<String> = match stack.eval(&read["Action"]) {
        V::L(l) => l.into_iter().collect(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        actions,
        BTreeSet::from([
            "secretsmanager:GetSecretValue".to_string(),
            "ssm:GetParameters".to_string()
        ])
    );
    let resources: Vec<String> = read["Resource"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| stack.eval(r).s())
        .collect();
    assert_eq!(
        resources,
        [
            "arn:aws:secretsmanager:ap-southeast-1:123456789012:secret:tollgate/production/webhooks/*",
            "arn:aws:ssm:ap-southeast-1:123456789012:parameter/tollgate/production/webhooks/*"
        ]
    );
}

/// Every admin route is on both APIs, as `openapi.yaml` lists them: on `HttpApi` behind the IAM
/// authorizer (operators' scripts sign SigV4), and on `OperatorApi` behind its JWT authorizer
/// (the dashboard sends an operator's token), on the same function either way. The page is on
/// `OperatorApi` alone, open, served by the function that serves `/admin/stats`; nothing else
/// is on `OperatorApi`, and the functions serving it read the roles claim the stack names.
#[test]
fn admin_routes_are_on_both_apis_and_the_dashboard_reads_with_a_token() {
    use tollgate_tests::template_routes::{self, RouteAuth};
    let stack = Stack::new(&production_parameters());
    let doc = &stack.doc;
    let documented: BTreeSet<(String, String)> = tollgate_tests::openapi::documented_operations()
        .into_iter()
        .filter(|(_, p)| p.starts_with("/admin/") && p != "/admin/")
        .collect();
    assert!(documented.len() >= 17, "{documented:?}");
    let routes = template_routes::all(doc);
    let admin_on = |api: &str| -> BTreeMap<(String, String), (String, RouteAuth)> {
        routes
            .iter()
            .filter(|r| r.api == api && r.path.starts_with("/admin/") && r.path != "/admin/")
            .map(|r| {
                (
                    (r.method.clone(), r.path.clone()),
                    (r.function.clone(), r.auth),
                )
            })
            .collect()
    };
    let iam = admin_on("HttpApi");
    let operator = admin_on("OperatorApi");
    assert_eq!(
        iam.keys().cloned().collect::<BTreeSet<_>>(),
        documented,
        "HttpApi's admin routes"
    );
    assert_eq!(
        operator.keys().cloned().collect::<BTreeSet<_>>(),
        documented,
        "OperatorApi's admin routes"
    );
    for (op, (function, auth)) in &iam {
        assert_eq!(*auth, RouteAuth::Iam, "{op:?} on HttpApi");
        let (f, a) = &operator[op];
        assert_eq!(f, function, "{op:?}: the same function on both APIs");
        assert_eq!(*a, RouteAuth::Default, "{op:?} on OperatorApi");
    }
    // The page: open, on OperatorApi only, with /admin/stats's function.
    let pages: Vec<_> = routes.iter().filter(|r| r.path == "/admin/").collect();
    assert_eq!(pages.len(), 1, "{pages:?}");
    assert_eq!(pages[0].api, "OperatorApi");
    assert_eq!(pages[0].method, "GET");
    assert_eq!(pages[0].auth, RouteAuth::Open);
    let stats_function = &iam[&("GET".to_owned(), "/admin/stats".to_owned())].0;
    assert_eq!(&pages[0].function, stats_function);
    // Nothing else on OperatorApi.
    assert_eq!(
        template_routes::on(doc, "OperatorApi").len(),
        documented.len() + 1
    );

    // OperatorApi's default is a JWT authorizer reading the Authorization header, whose issuer
    // and audiences are the viewers' unless the operators' are given.
    let api = &doc["Resources"]["OperatorApi"];
    assert_eq!(api["Type"].as_str(), Some("AWS::Serverless::HttpApi"));
    let auth = &api["Properties"]["Auth"];
    let name = auth["DefaultAuthorizer"].as_str().unwrap();
    let authorizer = &auth["Authorizers"][name];
    assert_eq!(
        authorizer["IdentitySource"].as_str(),
        Some("$request.header.Authorization")
    );
    assert!(
        auth["EnableIamAuthorizer"].is_null(),
        "no IAM on OperatorApi"
    );
    let jwt = &authorizer["JwtConfiguration"];
    let issuer_and_audience = |stack: &Stack| {
        (
            stack.eval(&jwt["issuer"]).s(),
            match stack.eval(&jwt["audience"]) {
                V::L(l) => l,
                other => panic!("audience {other:?}"),
            },
        )
    };
    let mut given = production_parameters();
    given.insert("JwtIssuer", "https://viewers.example.com".into());
    given.insert("JwtAudience", "app-1,app-2".into());
    assert_eq!(
        issuer_and_audience(&Stack::new(&given)),
        (
            "https://viewers.example.com".to_owned(),
            vec!["app-1".to_owned(), "app-2".to_owned()]
        )
    );
    given.insert("OperatorJwtIssuer", "https://operators.example.com".into());
    given.insert("OperatorJwtAudience", "console".into());
    assert_eq!(
        issuer_and_audience(&Stack::new(&given)),
        (
            "https://operators.example.com".to_owned(),
            vec!["console".to_owned()]
        )
    );

    // Whoever serves OperatorApi reads operators' roles from the claim the stack names.
    given.insert("AuthRolesClaim", "cognito:groups".into());
    let stack = Stack::new(&given);
    let serving: BTreeSet<String> = template_routes::on(doc, "OperatorApi")
        .into_iter()
        .map(|r| r.function)
        .collect();
    assert_eq!(
        serving,
        BTreeSet::from(["create-order".to_owned(), "stream-token".to_owned()])
    );
    for (name, f) in stack.functions() {
        if serving.contains(name.as_str()) {
            assert_eq!(
                stack
                    .environment(&f)
                    .get("AUTH_ROLES_CLAIM")
                    .map(String::as_str),
                Some("cognito:groups"),
                "{name}"
            );
        }
    }
}
