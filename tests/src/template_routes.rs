//! The HTTP routes `template.yaml` gives each API: every function's `HttpApi` events, with
//! the API they are on, their method and path, and the authorizer they name. The API Gateway
//! stand-in serves these, so a test through it follows the template as deployed.

use serde_yaml::Value;

/// The authorizer a route names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteAuth {
    /// None named: the API's default authorizer.
    Default,
    /// `Authorizer: NONE`: open.
    Open,
    /// `Authorizer: AWS_IAM`: SigV4.
    Iam,
}

/// One route of an API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateRoute {
    /// The event's logical name.
    pub event: String,
    /// The serving function's binary (its `BuildProperties.Binary`).
    pub function: String,
    /// The API's logical name (`ApiId: !Ref <api>`).
    pub api: String,
    /// Upper case, e.g. `GET`.
    pub method: String,
    /// As declared, e.g. `/admin/users/{user_id}/orders`.
    pub path: String,
    pub auth: RouteAuth,
}

/// The template, parsed.
pub fn template() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    let text = std::fs::read_to_string(path).expect("template.yaml");
    serde_yaml::from_str(&text).expect("template.yaml is YAML")
}

/// The logical name behind `!Ref <name>` (or `{Ref: <name>}`).
fn reference(v: &Value) -> Option<&str> {
    match v {
        Value::Tagged(t) if t.tag == "Ref" => t.value.as_str(),
        Value::Mapping(m) => m.get("Ref").and_then(Value::as_str),
        _ => None,
    }
}

/// Every `HttpApi` event of every function.
pub fn all(doc: &Value) -> Vec<TemplateRoute> {
    let mut out = Vec::new();
    let resources = doc["Resources"].as_mapping().expect("Resources");
    for (_, r) in resources {
        if r["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let function = r["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .expect("a function's Binary")
            .to_owned();
        let Some(events) = r["Properties"]["Events"].as_mapping() else {
            continue;
        };
        for (name, e) in events {
            if e["Type"].as_str() != Some("HttpApi") {
                continue;
            }
            let p = &e["Properties"];
            let auth = match p["Auth"]["Authorizer"].as_str() {
                None => RouteAuth::Default,
                Some("NONE") => RouteAuth::Open,
                Some("AWS_IAM") => RouteAuth::Iam,
                Some(other) => panic!("authorizer {other} not understood"),
            };
            out.push(TemplateRoute {
                event: name.as_str().expect("an event name").to_owned(),
                function: function.clone(),
                api: reference(&p["ApiId"])
                    .expect("ApiId: !Ref <api>")
                    .to_owned(),
                method: p["Method"].as_str().expect("Method").to_uppercase(),
                path: p["Path"].as_str().expect("Path").to_owned(),
                auth,
            });
        }
    }
    out
}

/// The routes on one API.
pub fn on(doc: &Value, api: &str) -> Vec<TemplateRoute> {
    all(doc).into_iter().filter(|r| r.api == api).collect()
}
