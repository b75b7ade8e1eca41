//! The provider conformance suite for every payment provider, on both stores: one test per
//! provider, scenario and store, named `<provider>::<scenario>::<store>`.

use tollgate_tests::provider_conformance::{self as pc, Conformant, Harness};
use tollgate_tests::Backend;

/// On DynamoDB without moto the harness is `None`, and the test is skipped with a message
/// (or fails when `TOLLGATE_REQUIRE_MOTO` is set).
async fn run<P, F>(backend: Backend, scenario: impl FnOnce(Harness<P>) -> F)
where
    P: Conformant,
    F: std::future::Future<Output = ()>,
{
    if let Some(h) = Harness::<P>::start(backend).await {
        scenario(h).await;
    }
}

macro_rules! scenarios {
    ($provider:ty: $($scenario:ident),+ $(,)?) => {
        $(
            mod $scenario {
                use super::*;

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn memory() {
                    run::<$provider, _>(Backend::Memory, |h| async move {
                        pc::$scenario(&h).await
                    })
                    .await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn dynamo() {
                    run::<$provider, _>(Backend::Dynamo, |h| async move {
                        pc::$scenario(&h).await
                    })
                    .await;
                }
            }
        )+
    };
}

mod sandbox {
    use super::*;
    scenarios!(pc::sandbox::Sandbox:
        paid_callback_settles_once,
        duplicate_callback_has_no_second_effect,
        bad_callbacks_are_refused_and_change_nothing,
        refund_revokes_access,
        concurrent_duplicates_grant_once,
    );
}

mod wechat {
    use super::*;
    scenarios!(pc::wechat::Wechat:
        paid_callback_settles_once,
        duplicate_callback_has_no_second_effect,
        bad_callbacks_are_refused_and_change_nothing,
        refund_revokes_access,
        concurrent_duplicates_grant_once,
    );
}

mod alipay {
    use super::*;
    scenarios!(pc::alipay::Alipay:
        paid_callback_settles_once,
        duplicate_callback_has_no_second_effect,
        bad_callbacks_are_refused_and_change_nothing,
        refund_revokes_access,
        concurrent_duplicates_grant_once,
    );
}

mod huya {
    use super::*;
    // No refund scenario: Huya sends no refund callback (refunds stay in Huya's panel).
    scenarios!(pc::huya::Huya:
        paid_callback_settles_once,
        duplicate_callback_has_no_second_effect,
        bad_callbacks_are_refused_and_change_nothing,
        concurrent_duplicates_grant_once,
    );
}
