//! Who may connect and what they may do: people by password, session or token; partner
//! nodes by key; everyone else read-only or refused.

use std::time::Duration;

use automerge::{transaction::Transactable, Automerge, ROOT};
use ibis_node::client::{Client, ClientOptions};
use ibis_node::federation::NodeKey;
use ibis_node::registry::{Acl, Peer, Registry};
use ibis_node::{InitOptions, Network, RunningNode, ServeOptions};
use ibis_shared::model::Role;
use ibis_shared::sync::Notification;
use ibis_shared::DocumentId;

const WAIT: Duration = Duration::from_secs(20);

async fn serve(dir: &std::path::Path, open: bool) -> RunningNode {
    ibis_node::serve(ServeOptions {
        data_dir: dir.to_owned(),
        listen: Some("127.0.0.1:0".parse().unwrap()),
        open,
        ..ServeOptions::default()
    })
    .await
    .unwrap()
}

fn plain_doc() -> Automerge {
    let mut doc = Automerge::new();
    doc.transact::<_, _, automerge::AutomergeError>(|tx| {
        tx.put(ROOT, "note", "hello")?;
        Ok(())
    })
    .unwrap();
    doc
}

/// The HTTP status a WebSocket upgrade to `url` gets, or 101.
async fn upgrade_status(url: &str) -> u16 {
    match tokio_tungstenite::connect_async(url).await {
        Ok(_) => 101,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("unexpected connection error: {e}"),
    }
}

async fn wait_for_peers(node: &RunningNode, n: u64) -> bool {
    for _ in 0..200 {
        if node
            .metrics()
            .ready_peers
            .load(std::sync::atomic::Ordering::Relaxed)
            >= n
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_need_valid_credentials_to_write() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().unwrap();
        ibis_node::init(&InitOptions::new(dir.path(), "IOM")).unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        registry
            .add_user("amy", Role::Editor, "a long enough password")
            .unwrap();
        let token = registry.issue_token("amy", "test", 1).unwrap();
        let expired = registry.issue_token("amy", "old", 1).unwrap();
        registry.expire(&expired).unwrap();
        let node = serve(dir.path(), false).await;

        // Bad and expired credentials are refused at the upgrade, with a clear status.
        assert_eq!(upgrade_status(&format!("{}?token=ibis_forged", node.sync_url())).await, 401);
        assert_eq!(upgrade_status(&format!("{}?token={expired}", node.sync_url())).await, 401);

        // A member with a token writes.
        let amy = Client::connect(
            &node.sync_url(),
            ClientOptions {
                query: format!("token={token}"),
                ..ClientOptions::default()
            },
            WAIT,
        )
        .await
        .unwrap();
        let id = amy.create(plain_doc()).await.unwrap();
        amy.wait_synced(id, WAIT).await.unwrap();

        // An anonymous visitor reads it, but its change is refused with a reason.
        let anon = Client::connect(&node.sync_url(), ClientOptions::default(), WAIT)
            .await
            .unwrap();
        anon.open(id, WAIT).await.unwrap();
        let mut events = anon.subscribe();
        anon.change(id, |d| {
            d.transact::<_, _, automerge::AutomergeError>(|tx| {
                tx.put(ROOT, "note", "vandalized")?;
                Ok(())
            })
            .unwrap();
        })
        .await
        .unwrap();
        ibis_node::client::wait_for(&mut events, WAIT, "the refusal", |n| {
            matches!(n, Notification::PeerError { message, .. } if message.contains("anonymous visitors cannot change documents"))
        })
        .await
        .unwrap();
        let seen_by_amy = amy.document(id).await.unwrap();
        assert_eq!(
            automerge::ReadDoc::get(&seen_by_amy, ROOT, "note")
                .unwrap()
                .map(|(v, _)| v.to_string()),
            Some("\"hello\"".to_owned())
        );
        anon.close().await;
        amy.close().await;
        node.shutdown().await.unwrap();
    })
    .await
    .expect("finishes in time");
}

/// Two nodes that know each other's keys.
async fn pair(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let a = dir.join("a");
    let b = dir.join("b");
    let info = ibis_node::init(&InitOptions::new(&a, "IOM")).unwrap();
    let mut options = InitOptions::new(&b, "NLC");
    options.network = Network::Join {
        directory: DocumentId::parse_id_or_url(&info.directory).unwrap(),
    };
    ibis_node::init(&options).unwrap();
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partners_authenticate_by_key_and_strangers_are_refused() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().unwrap();
        let (a_dir, b_dir) = pair(dir.path()).await;
        let a = serve(&a_dir, false).await;
        let a_key = NodeKey::load_or_create(&a_dir)
            .unwrap()
            .public()
            .to_string();
        let b_key = NodeKey::load_or_create(&b_dir)
            .unwrap()
            .public()
            .to_string();
        Registry::open(&a_dir)
            .unwrap()
            .add_peer(&Peer {
                name: "NLC".into(),
                url: String::new(),
                public_key: b_key,
                organization: String::new(),
                acl: Acl::FULL,
            })
            .unwrap();
        Registry::open(&b_dir)
            .unwrap()
            .add_peer(&Peer {
                name: "IOM".into(),
                url: a.sync_url(),
                public_key: a_key.clone(),
                organization: String::new(),
                acl: Acl::FULL,
            })
            .unwrap();
        let b = serve(&b_dir, false).await;
        assert!(wait_for_peers(&a, 1).await, "B authenticated to A");

        // A node A does not know is refused before the protocol starts.
        let stranger = tempfile::tempdir().unwrap();
        let key = NodeKey::load_or_create(stranger.path()).unwrap();
        let url = format!("{}?node={}&cnonce=abc", a.sync_url(), key.public());
        assert_eq!(upgrade_status(&url).await, 401);

        // A node expecting another key for A does not connect.
        let c_dir = dir.path().join("c");
        ibis_node::init(&InitOptions::new(&c_dir, "Impostor test")).unwrap();
        Registry::open(&c_dir)
            .unwrap()
            .add_peer(&Peer {
                name: "not IOM".into(),
                url: a.sync_url(),
                public_key: NodeKey::load_or_create(stranger.path())
                    .unwrap()
                    .public()
                    .to_string(),
                organization: String::new(),
                acl: Acl::FULL,
            })
            .unwrap();
        let c = serve(&c_dir, true).await;
        assert!(
            !wait_for_peers(&c, 1).await,
            "C must not accept A's key as another's"
        );

        c.shutdown().await.unwrap();
        b.shutdown().await.unwrap();
        a.shutdown().await.unwrap();
    })
    .await
    .expect("finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_partner_joins_with_an_invitation() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().unwrap();
        let a_dir = dir.path().join("a");
        ibis_node::init(&InitOptions::new(&a_dir, "IOM")).unwrap();
        let invite = Registry::open(&a_dir)
            .unwrap()
            .invite("UNAOC", "unaoc-invited", 1)
            .unwrap();
        let a = serve(&a_dir, false).await;

        let c_dir = dir.path().join("c");
        let url = a.http_url();
        let joined = {
            let c_dir = c_dir.clone();
            let invite = invite.clone();
            tokio::task::spawn_blocking(move || {
                ibis_node::federation::redeem_invitation(&url, &invite, "UNAOC", &c_dir, "")
            })
            .await
            .unwrap()
            .unwrap()
        };
        assert_eq!(joined.directory, a.info().directory);
        // Bound to the organization it was invited as, both ways.
        assert_eq!(joined.organization_id, "unaoc-invited");
        assert_eq!(joined.inviter_organization, a.info().organization_id);
        let bound = Registry::open(&a_dir).unwrap().peers().unwrap();
        assert_eq!(bound[0].organization, "unaoc-invited");
        let mut options = InitOptions::new(&c_dir, "UNAOC");
        options.org_id = Some(joined.organization_id.clone());
        options.network = Network::Join {
            directory: DocumentId::parse_id_or_url(&joined.directory).unwrap(),
        };
        ibis_node::init(&options).unwrap();
        Registry::open(&c_dir)
            .unwrap()
            .add_peer(&Peer {
                name: joined.organization.clone(),
                url: a.sync_url(),
                public_key: joined.node_key.clone(),
                organization: joined.inviter_organization.clone(),
                acl: Acl::FULL,
            })
            .unwrap();
        let c = serve(&c_dir, false).await;
        assert!(wait_for_peers(&a, 1).await, "the invited node is accepted");

        // The invitation was used up.
        let again = {
            let url = a.http_url();
            let d = dir.path().join("d");
            tokio::task::spawn_blocking(move || {
                ibis_node::federation::redeem_invitation(&url, &invite, "X", &d, "")
            })
            .await
            .unwrap()
        };
        assert!(again
            .unwrap_err()
            .to_string()
            .contains("unknown, used or expired"));
        c.shutdown().await.unwrap();
        a.shutdown().await.unwrap();
    })
    .await
    .expect("finishes in time");
}
