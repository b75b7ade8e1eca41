//! What `openapi.yaml` documents, read as the tests need it.

/// Every documented operation as (METHOD, path template), in the file's order.
pub fn documented_operations() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.yaml"))
        .expect("openapi.yaml");
    let mut ops = Vec::new();
    let mut in_paths = false;
    let mut path = String::new();
    for line in text.lines() {
        if line == "paths:" {
            in_paths = true;
        } else if in_paths && !line.starts_with(' ') && !line.is_empty() {
            break;
        } else if in_paths && line.starts_with("  /") && line.ends_with(':') {
            path = line.trim().trim_end_matches(':').to_owned();
        } else if in_paths {
            for m in ["get", "post", "put", "delete", "patch"] {
                if line == format!("    {m}:") {
                    ops.push((m.to_uppercase(), path.clone()));
                }
            }
        }
    }
    ops
}

/// A path template with its parameters filled in with values the test app knows (`user` for
/// `{user_id}`).
pub fn concrete(template: &str, user: &str) -> String {
    template
        .replace("{id}", "01KQ0000000000000000000001")
        .replace("{provider}", "sandbox")
        .replace("{product_id}", "pass")
        .replace("{stream_id}", "concert")
        .replace("{user_id}", user)
        .replace("{scope}", "*")
        .replace("{source_id}", "promo%23x")
}
