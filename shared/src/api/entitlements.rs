//! `GET /entitlements` and `GET /entitlements/{product_id}`: what the caller may watch.

use super::problem::json_response;
use crate::app::App;
use crate::domain::grant::GrantWindow;
use crate::domain::time::rfc3339;
use crate::service::{entitlements, ServiceError};
use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::json;

/// A grant with its stacked validity, as the viewer and support see it.
pub(super) fn window_json(w: &GrantWindow) -> serde_json::Value {
    json!({
        "scope": w.scope,
        "product_id": w.product_id,
        "source_id": w.source_id,
        "valid_from": rfc3339(w.valid_from),
        "valid_until": w.valid_until.map(rfc3339),
    })
}

pub(super) async fn list(app: &App, user: &str) -> Result<Response<Bytes>, ServiceError> {
    entitlements::list(app, user).await.map(|e| {
        let grants: Vec<_> = e.grants.iter().map(window_json).collect();
        json_response(
            StatusCode::OK,
            &json!({"grants": grants, "credits": e.credits}),
        )
    })
}

pub(super) async fn product(
    app: &App,
    user: &str,
    product_id: &str,
) -> Result<Response<Bytes>, ServiceError> {
    entitlements::product(app, user, product_id).await.map(|s| {
        json_response(
            StatusCode::OK,
            &json!({
                "product_id": product_id,
                "can_use": s.can_use,
                "expires_at": s.expires_at.map(rfc3339),
                "had_bought": s.had_bought,
                "expire": s.expire,
            }),
        )
    })
}
