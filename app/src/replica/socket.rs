//! The WebSocket to the node that served the page, reconnecting with backoff (1 s doubling
//! to 10 s, and at once when the browser says it is back online).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use futures::channel::oneshot;
use ibis_shared::sync::ConnectionId;
use js_sys::{ArrayBuffer, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{BinaryType, MessageEvent, WebSocket};

use super::{sleep, Replica};

const FIRST_DELAY_MS: i32 = 1_000;
const MAX_DELAY_MS: i32 = 10_000;

/// The current connection: the socket, the engine's id for it once open, and the event
/// handlers (kept alive as long as the socket).
pub struct Socket {
    ws: WebSocket,
    conn: Rc<Cell<Option<ConnectionId>>>,
    _handlers: Vec<Closure<dyn FnMut(JsValue)>>,
}

impl Socket {
    pub fn conn(&self) -> Option<ConnectionId> {
        self.conn.get()
    }

    pub fn send(&self, frame: &[u8]) {
        let _ = self.ws.send_with_u8_array(frame);
    }

    pub fn close(&self) {
        let _ = self.ws.close();
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        self.ws.set_onerror(None);
        let _ = self.ws.close();
    }
}

/// `ws(s)://<host>/sync` for the page's origin.
fn sync_url() -> Option<String> {
    let location = web_sys::window()?.location();
    let protocol = if location.protocol().ok()? == "https:" {
        "wss:"
    } else {
        "ws:"
    };
    Some(format!("{protocol}//{}/sync", location.host().ok()?))
}

pub fn start(replica: Rc<Replica>) {
    leptos::task::spawn_local(async move {
        let wake: Rc<RefCell<Option<oneshot::Sender<()>>>> = Rc::default();
        // Back online: retry now rather than after the backoff.
        let online = {
            let wake = wake.clone();
            Closure::<dyn FnMut(JsValue)>::new(move |_| {
                if let Some(tx) = wake.borrow_mut().take() {
                    let _ = tx.send(());
                }
            })
        };
        if let Some(window) = web_sys::window() {
            let _ =
                window.add_event_listener_with_callback("online", online.as_ref().unchecked_ref());
        }
        online.forget();
        let mut delay = FIRST_DELAY_MS;
        loop {
            let (closed_tx, closed_rx) = oneshot::channel::<bool>();
            if let Some(url) = sync_url() {
                if let Ok(socket) = open(&replica, &url, closed_tx) {
                    *replica.socket.borrow_mut() = Some(socket);
                    let was_open = closed_rx.await.unwrap_or(false);
                    if was_open {
                        delay = FIRST_DELAY_MS;
                    }
                }
            }
            let (tx, rx) = oneshot::channel();
            *wake.borrow_mut() = Some(tx);
            futures::future::select(Box::pin(sleep(delay)), rx).await;
            delay = (delay * 2).min(MAX_DELAY_MS);
        }
    });
}

fn open(
    replica: &Rc<Replica>,
    url: &str,
    closed: oneshot::Sender<bool>,
) -> Result<Socket, JsValue> {
    let ws = WebSocket::new(url)?;
    ws.set_binary_type(BinaryType::Arraybuffer);
    let conn: Rc<Cell<Option<ConnectionId>>> = Rc::default();
    let closed = Rc::new(RefCell::new(Some(closed)));

    let on_open = {
        let replica = replica.clone();
        let conn = conn.clone();
        Closure::<dyn FnMut(JsValue)>::new(move |_| {
            conn.set(Some(replica.connected()));
        })
    };
    let on_message = {
        let replica = replica.clone();
        let conn = conn.clone();
        Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
            let (Some(c), Some(event)) = (conn.get(), event.dyn_ref::<MessageEvent>()) else {
                return;
            };
            match event.data().dyn_into::<ArrayBuffer>() {
                Ok(buffer) => replica.frame(c, Uint8Array::new(&buffer).to_vec()),
                Err(_) => replica.text_frame(c),
            }
        })
    };
    let on_close = {
        let replica = replica.clone();
        let conn = conn.clone();
        Closure::<dyn FnMut(JsValue)>::new(move |_| {
            let was_open = conn.get().is_some();
            if let Some(c) = conn.take() {
                replica.disconnected(c);
            }
            if let Some(tx) = closed.borrow_mut().take() {
                let _ = tx.send(was_open);
            }
        })
    };
    ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    Ok(Socket {
        ws,
        conn,
        _handlers: vec![on_open, on_message, on_close],
    })
}
