//! Property tests of the signature contract: determinism in any order,
//! line-number independence of stack signatures, and no secrets in templates.

use gardener_processor::mask::mask;
use gardener_processor::signature::{SignatureConfig, Signer};
use proptest::prelude::*;

fn signer() -> Signer {
    Signer::new(&SignatureConfig::default()).unwrap()
}

/// Messages shaped like the seeds, with generated ids, numbers and users.
fn message() -> impl Strategy<Value = String> {
    let id = "[a-z]{2,8}_[0-9]{6,12}_[0-9a-f]{8}";
    prop_oneof![
        id.prop_map(|i| format!("WebSocket connection state error for {i}: WebSocket is not connected. Need to call \"accept\" first.")),
        (0u32..100).prop_map(|n| format!("Agent failed after {n} attempts: trace_id Field required")),
        "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}".prop_map(|u| format!("Stream {u} error: X.__init__() got an unexpected keyword argument 'metadata'")),
        (1u8..255, 1u8..255, 1u16..65535).prop_map(|(a, b, p)| format!("connect to 10.{a}.{b}.1:{p} refused")),
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    /// Same messages, any order, fresh signer: same fingerprints.
    #[test]
    fn deterministic_in_any_order(msgs in prop::collection::vec(message(), 1..40), seed in any::<u64>()) {
        let a = signer();
        let first: Vec<(String, u64, String)> = msgs
            .iter()
            .map(|m| { let s = a.sign_message("svc", m); (m.clone(), s.fingerprint, s.template) })
            .collect();
        // A deterministic shuffle driven by `seed`.
        let mut order: Vec<usize> = (0..msgs.len()).collect();
        let mut x = seed | 1;
        for i in (1..order.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            order.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let b = signer();
        for &i in &order {
            let s = b.sign_message("svc", &msgs[i]);
            prop_assert_eq!(s.fingerprint, first[i].1);
            prop_assert_eq!(&s.template, &first[i].2);
        }
    }

    /// A redeploy that only moves lines keeps every signature.
    #[test]
    fn line_numbers_do_not_change_signatures(l in prop::collection::vec(1u32..5000, 8), r in prop::collection::vec(1u32..5000, 8)) {
        let s = signer();
        let py = |n: &[u32]| format!(
            "Error in handler\nTraceback (most recent call last):\n  File \"/app/netra_backend/app/routes/websocket.py\", line {}, in handle\n    await x()\n  File \"/app/netra_backend/app/core/manager.py\", line {}, in send\n    raise RuntimeError('x')\n  File \"/usr/lib/python3.11/site-packages/starlette/websockets.py\", line {}, in send_text\n    y\nRuntimeError: WebSocket is not connected. Need to call \"accept\" first.",
            n[0], n[1], n[2]);
        let java = |n: &[u32]| format!(
            "java.lang.IllegalStateException: closed\n\tat com.acme.Chat.send(Chat.java:{})\n\tat com.acme.Router.route(Router.java:{})\n\tat java.base/java.lang.Thread.run(Thread.java:{})",
            n[0], n[1], n[2]);
        let node = |n: &[u32]| format!(
            "TypeError: Cannot read properties of undefined (reading 'id')\n    at handler (/app/src/routes/user.js:{}:{})\n    at Layer.handle (/app/node_modules/express/lib/router/layer.js:{}:5)",
            n[0], n[3], n[1]);
        let go = |n: &[u32]| format!(
            "panic: runtime error: index out of range [3] with length 3\n\ngoroutine 1 [running]:\nmain.(*Server).handle(0x0)\n\t/app/server.go:{} +0x1d\nmain.main()\n\t/app/main.go:{} +0x25\n",
            n[0], n[1]);
        for f in [&py as &dyn Fn(&[u32]) -> String, &java, &node, &go] {
            let a = s.sign_message("svc", &f(&l));
            let b = s.sign_message("svc", &f(&r));
            prop_assert_eq!(a.fingerprint, b.fingerprint, "{} / {}", a.template, b.template);
            prop_assert!(!a.top_frames.is_empty());
        }
    }

    /// No generated secret survives into a template.
    #[test]
    fn no_secret_in_templates(
        secret in prop_oneof![
            ("[A-Za-z0-9_-]{10,30}", "[A-Za-z0-9_-]{10,40}", "[A-Za-z0-9_-]{10,40}").prop_map(|(a, b, c)| format!("eyJ{a}.{b}.{c}")),
            "[A-Za-z0-9]{12,40}".prop_map(|t| format!("Bearer {t}")),
            "[a-z][A-Za-z0-9!#%^*]{7,20}".prop_map(|p| format!("password={p}")),
            "[a-z][A-Za-z0-9!#%^*]{7,20}".prop_map(|p| format!("password: {p}")),
            "[a-z][A-Za-z0-9]{7,20}".prop_map(|p| format!("token={p}")),
            "[a-z][A-Za-z0-9]{7,20}".prop_map(|p| format!("api_key={p}")),
            "[a-z][A-Za-z0-9]{7,20}".prop_map(|p| format!("secret=\"{p}\"")),
            ("[a-z][a-z0-9._]{2,12}", "[a-z]{2,10}", "(com|org|io|de)").prop_map(|(u, d, t)| format!("{u}@{d}.{t}")),
            "[A-Za-z0-9]{20,40}".prop_map(|k| format!("sk-{k}")),
            "[A-Z0-9]{16}".prop_map(|k| format!("AKIA{k}")),
            "[A-Za-z0-9]{36}".prop_map(|k| format!("ghp_{k}")),
        ],
        prefix in "(login failed for|request rejected:|auth error|upstream said)",
    ) {
        // The secret proper: what follows `=`, `: `, `Bearer `, or the whole token.
        let value = secret
            .rsplit(['=', ' '])
            .next()
            .unwrap()
            .trim_matches('"')
            .to_string();
        let msg = format!("{prefix} {secret} while calling upstream");
        let t = mask(&msg);
        prop_assert!(!t.contains(&value), "secret {:?} in template {:?}", value, t);
    }

    /// Masking never panics, stays bounded, and is idempotent on its output's
    /// fingerprint (masking a template again does not change its grouping).
    #[test]
    fn masking_is_total_and_bounded(s in any::<String>()) {
        let t = mask(&s);
        prop_assert!(t.len() <= s.len().min(4096) + 64);
    }
}
