//! The laptop server: all routes on `PORT`, embedded store unless `TABLE_NAME` is set.

use crate::api::auth::mint_hs256;
use crate::app::{App, StartupError};
use crate::config::{AuthMode, Profile, LOCAL_DEV_JWT_SECRET};

pub async fn run() -> Result<(), StartupError> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
    let app = App::from_env(Profile::Local).await?;
    let addr = format!("127.0.0.1:{}", app.config.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|e| StartupError::Other(format!("cannot listen on {addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| StartupError::Other(e.to_string()))?;
    let store = match &app.config.table_name {
        Some(t) => format!("DynamoDB table {t}"),
        None => "embedded (in memory)".into(),
    };
    println!("tollgate-local listening on http://{bound}");
    println!("  store: {store}");
    println!("  providers: {}", app.config.providers.join(", "));
    if app.config.auth_mode == AuthMode::Jwt {
        if let Some(secret) = &app.config.auth_jwt_secret {
            if secret.expose() == LOCAL_DEV_JWT_SECRET {
                println!("  auth: HS256 with the built-in development secret (set AUTH_JWT_SECRET to change)");
            }
            let token = mint_hs256(secret.expose(), "demo-user", app.clock.now(), 24 * 3600);
            println!("  demo bearer token (user demo-user, 24 h):\n    export TOKEN={token}");
        }
    }
    crate::api::server::serve(app, listener, async {
        let _ = tokio::signal::ctrl_c().await;
        println!("shutting down");
    })
    .await;
    Ok(())
}
