if ('__TAURI__' in window) {
var __TAURI_PLUGIN_NOVA_HYPERCORE__ = (function (exports) {
    'use strict';

    /******************************************************************************
    Copyright (c) Microsoft Corporation.

    Permission to use, copy, modify, and/or distribute this software for any
    purpose with or without fee is hereby granted.

    THE SOFTWARE IS PROVIDED "AS IS" AND THE AUTHOR DISCLAIMS ALL WARRANTIES WITH
    REGARD TO THIS SOFTWARE INCLUDING ALL IMPLIED WARRANTIES OF MERCHANTABILITY
    AND FITNESS. IN NO EVENT SHALL THE AUTHOR BE LIABLE FOR ANY SPECIAL, DIRECT,
    INDIRECT, OR CONSEQUENTIAL DAMAGES OR ANY DAMAGES WHATSOEVER RESULTING FROM
    LOSS OF USE, DATA OR PROFITS, WHETHER IN AN ACTION OF CONTRACT, NEGLIGENCE OR
    OTHER TORTIOUS ACTION, ARISING OUT OF OR IN CONNECTION WITH THE USE OR
    PERFORMANCE OF THIS SOFTWARE.
    ***************************************************************************** */
    /* global Reflect, Promise, SuppressedError, Symbol, Iterator */


    function __classPrivateFieldGet(receiver, state, kind, f) {
        if (kind === "a" && !f) throw new TypeError("Private accessor was defined without a getter");
        if (typeof state === "function" ? receiver !== state || !f : !state.has(receiver)) throw new TypeError("Cannot read private member from an object whose class did not declare it");
        return kind === "m" ? f : kind === "a" ? f.call(receiver) : f ? f.value : state.get(receiver);
    }

    function __classPrivateFieldSet(receiver, state, value, kind, f) {
        if (typeof state === "function" ? receiver !== state || true : !state.has(receiver)) throw new TypeError("Cannot write private member to an object whose class did not declare it");
        return (state.set(receiver, value)), value;
    }

    typeof SuppressedError === "function" ? SuppressedError : function (error, suppressed, message) {
        var e = new Error(message);
        return e.name = "SuppressedError", e.error = error, e.suppressed = suppressed, e;
    };

    // Copyright 2019-2024 Tauri Programme within The Commons Conservancy
    // SPDX-License-Identifier: Apache-2.0
    // SPDX-License-Identifier: MIT
    var _Channel_instances, _Channel_onmessage, _Channel_nextMessageIndex, _Channel_pendingMessages, _Channel_messageEndIndex, _Channel_deliver;
    /**
     * Invoke your custom commands.
     *
     * This package is also accessible with `window.__TAURI__.core` when [`app.withGlobalTauri`](https://v2.tauri.app/reference/config/#withglobaltauri) in `tauri.conf.json` is set to `true`.
     * @module
     */
    /**
     * A key to be used to implement a special function
     * on your types that define how your type should be serialized
     * when passing across the IPC.
     * @example
     * Given a type in Rust that looks like this
     * ```rs
     * #[derive(serde::Serialize, serde::Deserialize)
     * enum UserId {
     *   String(String),
     *   Number(u32),
     * }
     * ```
     * `UserId::String("id")` would be serialized into `{ String: "id" }`
     * and so we need to pass the same structure back to Rust
     * ```ts
     * import { SERIALIZE_TO_IPC_FN } from "@tauri-apps/api/core"
     *
     * class UserIdString {
     *   id
     *   constructor(id) {
     *     this.id = id
     *   }
     *
     *   [SERIALIZE_TO_IPC_FN]() {
     *     return { String: this.id }
     *   }
     * }
     *
     * class UserIdNumber {
     *   id
     *   constructor(id) {
     *     this.id = id
     *   }
     *
     *   [SERIALIZE_TO_IPC_FN]() {
     *     return { Number: this.id }
     *   }
     * }
     *
     * type UserId = UserIdString | UserIdNumber
     * ```
     *
     */
    // if this value changes, make sure to update it in:
    // 1. ipc.js
    // 2. process-ipc-message-fn.js
    const SERIALIZE_TO_IPC_FN = '__TAURI_TO_IPC_KEY__';
    /**
     * Stores the callback in a known location, and returns an identifier that can be passed to the backend.
     * The backend uses the identifier to `eval()` the callback.
     *
     * @return An unique identifier associated with the callback function.
     *
     * @since 1.0.0
     */
    function transformCallback(
    // TODO: Make this not optional in v3
    callback, once = false) {
        return window.__TAURI_INTERNALS__.transformCallback(callback, once);
    }
    /**
     * A message channel used to stream values from Rust to the frontend.
     *
     * A `Channel` is the JavaScript counterpart of [`tauri::ipc::Channel`](https://docs.rs/tauri/2/tauri/ipc/struct.Channel.html).
     * Pass an instance as a command argument and the Rust command can declare a
     * `tauri::ipc::Channel<T>` parameter with the same name; every value sent from
     * Rust is then delivered to {@linkcode Channel.onmessage}. Messages are delivered
     * in the order they were sent, even when they arrive out of order.
     *
     * The channel stays alive until the Rust `Channel` is dropped, so it can be used
     * for long-running work such as download progress or log streaming.
     *
     * Raw byte payloads are delivered to the frontend as an `ArrayBuffer` rather than
     * a JSON value, so declare the channel as `Channel<ArrayBuffer>` when the Rust
     * side sends `tauri::ipc::InvokeResponseBody::Raw` — for example through a
     * `Channel<tauri::ipc::Response>` whose values are built with
     * `tauri::ipc::Response::new(bytes)`.
     *
     * @example
     * ```typescript
     * import { Channel, invoke } from '@tauri-apps/api/core';
     *
     * const onEvent = new Channel<string>();
     * onEvent.onmessage = (message) => {
     *   console.log(`got download event ${message}`);
     * };
     *
     * await invoke('download', { url: 'https://tauri.app', onEvent });
     * ```
     *
     * The matching Rust command:
     * ```rust
     * #[tauri::command]
     * async fn download(url: String, on_event: tauri::ipc::Channel<String>) -> tauri::Result<()> {
     *   on_event.send("started".to_string())?;
     *   on_event.send("finished".to_string())?;
     *   Ok(())
     * }
     * ```
     *
     * @since 2.0.0
     */
    class Channel {
        constructor(onmessage) {
            _Channel_instances.add(this);
            _Channel_onmessage.set(this, void 0);
            // the index is used as a mechanism to preserve message order
            _Channel_nextMessageIndex.set(this, 0);
            _Channel_pendingMessages.set(this, []);
            _Channel_messageEndIndex.set(this, void 0);
            __classPrivateFieldSet(this, _Channel_onmessage, onmessage || (() => { }));
            this.id = transformCallback((rawMessage) => {
                const index = rawMessage.index;
                if ('end' in rawMessage) {
                    if (index == __classPrivateFieldGet(this, _Channel_nextMessageIndex, "f")) {
                        this.cleanupCallback();
                    }
                    else {
                        __classPrivateFieldSet(this, _Channel_messageEndIndex, index);
                    }
                    return;
                }
                const message = rawMessage.message;
                // Process the message if we're at the right order
                if (index == __classPrivateFieldGet(this, _Channel_nextMessageIndex, "f")) {
                    __classPrivateFieldGet(this, _Channel_instances, "m", _Channel_deliver).call(this, message);
                    __classPrivateFieldSet(this, _Channel_nextMessageIndex, __classPrivateFieldGet(this, _Channel_nextMessageIndex, "f") + 1);
                    // process pending messages
                    while (__classPrivateFieldGet(this, _Channel_nextMessageIndex, "f") in __classPrivateFieldGet(this, _Channel_pendingMessages, "f")) {
                        const message = __classPrivateFieldGet(this, _Channel_pendingMessages, "f")[__classPrivateFieldGet(this, _Channel_nextMessageIndex, "f")];
                        __classPrivateFieldGet(this, _Channel_instances, "m", _Channel_deliver).call(this, message);
                        // eslint-disable-next-line @typescript-eslint/no-array-delete
                        delete __classPrivateFieldGet(this, _Channel_pendingMessages, "f")[__classPrivateFieldGet(this, _Channel_nextMessageIndex, "f")];
                        __classPrivateFieldSet(this, _Channel_nextMessageIndex, __classPrivateFieldGet(this, _Channel_nextMessageIndex, "f") + 1);
                    }
                    if (__classPrivateFieldGet(this, _Channel_nextMessageIndex, "f") === __classPrivateFieldGet(this, _Channel_messageEndIndex, "f")) {
                        this.cleanupCallback();
                    }
                }
                // Queue the message if we're not
                else {
                    // eslint-disable-next-line security/detect-object-injection
                    __classPrivateFieldGet(this, _Channel_pendingMessages, "f")[index] = message;
                }
            });
        }
        cleanupCallback() {
            window.__TAURI_INTERNALS__.unregisterCallback(this.id);
        }
        /**
         * The handler called for every message sent by the Rust side of this channel.
         *
         * Assigning a new handler replaces the previous one; messages that arrived
         * before a handler was set are not replayed, so set it (or pass it to the
         * constructor) before sending the channel to the backend.
         */
        set onmessage(handler) {
            __classPrivateFieldSet(this, _Channel_onmessage, handler);
        }
        get onmessage() {
            return __classPrivateFieldGet(this, _Channel_onmessage, "f");
        }
        [(_Channel_onmessage = new WeakMap(), _Channel_nextMessageIndex = new WeakMap(), _Channel_pendingMessages = new WeakMap(), _Channel_messageEndIndex = new WeakMap(), _Channel_instances = new WeakSet(), _Channel_deliver = function _Channel_deliver(message) {
            try {
                __classPrivateFieldGet(this, _Channel_onmessage, "f").call(this, message);
            }
            catch (error) {
                // A throwing handler must not stall the channel: the message index would
                // never advance and every later message would stay queued. Rethrow
                // asynchronously so the error is still reported as uncaught.
                queueMicrotask(() => {
                    throw error;
                });
            }
        }, SERIALIZE_TO_IPC_FN)]() {
            return `__CHANNEL__:${this.id}`;
        }
        toJSON() {
            // eslint-disable-next-line security/detect-object-injection
            return this[SERIALIZE_TO_IPC_FN]();
        }
    }
    /**
     * Sends a message to the backend.
     * @example
     * ```typescript
     * import { invoke } from '@tauri-apps/api/core';
     * await invoke('login', { user: 'tauri', password: 'poiwe3h4r5ip3yrhtew9ty' });
     * ```
     *
     * @param cmd The command name.
     * @param args The optional arguments to pass to the command.
     * @param options The request options.
     * @return A promise resolving or rejecting to the backend response.
     *
     * @since 1.0.0
     */
    async function invoke(cmd, args = {}, options) {
        return window.__TAURI_INTERNALS__.invoke(cmd, args, options);
    }

    // The names every module of the bindings shares, and `HypercoreError`, the one error type
    // every call rejects with. Re-exported by index.ts; its own module so that index.ts, atlas.ts
    // and crdt.ts import it without an import cycle.
    /** The plugin's runtime name, as in `invoke('plugin:nova-hypercore|append')`. */
    const PLUGIN_NAME = 'nova-hypercore';
    /** The header that names the log of a raw-body `append`. */
    const LOG_NAME_HEADER = 'x-log-name';
    /** The nine error codes of the spec (`HypercoreError.code`). */
    const ERROR_CODES = [
        'OUT_OF_RANGE',
        'PAYLOAD_TOO_LARGE',
        'STORAGE_INACCESSIBLE',
        'SIGNATURE_INVALID',
        'REPLICATION_FAILED',
        'DESERIALIZATION_FAILED',
        'UNAUTHORIZED',
        'STORAGE_CORRUPTED',
        'IO_ERROR'
    ];
    /** Whether `value` is one of the nine error codes. */
    function isErrorCode(value) {
        return typeof value === 'string' && ERROR_CODES.includes(value);
    }
    /**
     * The error every function of this package rejects with.
     *
     * `code` is one of the nine codes. Tauri's own ACL denial (a command or plugin not granted to
     * the window) arrives as a string containing "not allowed" and becomes `UNAUTHORIZED`, the same
     * code the plugin uses for a log outside the caller's scope, so callers test one field.
     */
    class HypercoreError extends Error {
        name = 'HypercoreError';
        code;
        logName;
        seq;
        constructor(code, message, details = {}) {
            super(message, details.cause === undefined ? undefined : { cause: details.cause });
            this.code = code;
            if (details.logName !== undefined)
                this.logName = details.logName;
            if (details.seq !== undefined)
                this.seq = details.seq;
        }
        /**
         * Maps whatever an `invoke` rejected with to a `HypercoreError`:
         * - a `HypercoreError`: itself;
         * - the plugin's `{ code, message, logName?, seq? }`: the same fields;
         * - a string containing "not allowed" (Tauri's ACL): `UNAUTHORIZED`;
         * - a string about the command's arguments ("invalid args", "missing required key"):
         *   `DESERIALIZATION_FAILED`;
         * - anything else (another string, an object with an unknown code, an `Error`): `IO_ERROR`,
         *   with the original value as `cause`.
         */
        static from(raw) {
            if (raw instanceof HypercoreError)
                return raw;
            if (typeof raw === 'string') {
                if (raw.includes('not allowed')) {
                    return new HypercoreError('UNAUTHORIZED', raw, { cause: raw });
                }
                if (raw.includes('invalid args') || raw.includes('missing required key')) {
                    return new HypercoreError('DESERIALIZATION_FAILED', raw, { cause: raw });
                }
                return new HypercoreError('IO_ERROR', raw, { cause: raw });
            }
            if (typeof raw === 'object' && raw !== null) {
                const fields = raw;
                const message = typeof fields['message'] === 'string' ? fields['message'] : JSON.stringify(raw);
                const logName = typeof fields['logName'] === 'string' ? fields['logName'] : undefined;
                const seq = typeof fields['seq'] === 'number' ? fields['seq'] : undefined;
                if (isErrorCode(fields['code'])) {
                    return new HypercoreError(fields['code'], message, { logName, seq, cause: raw });
                }
                return new HypercoreError('IO_ERROR', message, { logName, seq, cause: raw });
            }
            return new HypercoreError('IO_ERROR', String(raw), { cause: raw });
        }
        /** The plugin's wire shape of this error. */
        toJSON() {
            const out = { code: this.code, message: this.message };
            if (this.logName !== undefined)
                out.logName = this.logName;
            if (this.seq !== undefined)
                out.seq = this.seq;
            return out;
        }
    }

    // The one way the bindings call the plugin, and the checks of what comes back. Internal:
    // index.ts does not re-export it (atlas.ts, crdt.ts and index.ts import it).
    /** Invokes `plugin:nova-hypercore|<command>`; any rejection becomes a `HypercoreError`. */
    async function call(command, args, options) {
        try {
            return await invoke(`plugin:${PLUGIN_NAME}|${command}`, args, options);
        }
        catch (e) {
            throw HypercoreError.from(e);
        }
    }
    /** `{ ...args, logName }`, or `args` when no log is named (the plugin's default log). */
    function withLog(args, logName) {
        return logName === undefined ? args : { ...args, logName };
    }
    /** A non-negative safe integer (a seq, a length, an id), or `DESERIALIZATION_FAILED`. */
    function toCount(value, what) {
        if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0)
            return value;
        throw new HypercoreError('DESERIALIZATION_FAILED', `${what}: expected a non-negative integer, got ${JSON.stringify(value)}`);
    }

    // ATLAS memory from the page: the spec's `MemoryNodeEntry`, `atlas_store` and `atlas_query`
    // (paginated, at most `MAX_MEMORY_PAGE` nodes per call; see the plugin's CONTRACT.md).
    //
    // Owns: the ATLAS command names and argument shapes, and the page iterator over a query.
    // Does not: validate nodes (the plugin checks the spec's schema and rejects with
    // DESERIALIZATION_FAILED naming the field) or check log names (the plugin's scope does).
    /** The ATLAS log the plugin uses when no `logName` is given. */
    const DEFAULT_ATLAS_LOG = 'atlas-memory';
    /** The most nodes one `queryMemory` call returns (a larger `limit` is clamped to it). */
    const MAX_MEMORY_PAGE = 500;
    /**
     * Stores `node` in the ATLAS log (default `atlas-memory`); resolves to its seq. A node that
     * fails the spec's schema rejects with `DESERIALIZATION_FAILED` and nothing is written.
     */
    async function storeMemoryNode(node, options = {}) {
        const seq = await call('atlas_store', withLog({ node }, options.logName));
        if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) {
            throw new HypercoreError('DESERIALIZATION_FAILED', `atlas_store: expected a seq, got ${JSON.stringify(seq)}`);
        }
        return seq;
    }
    /** One page of `query`'s answer (`next` leads to the following page). */
    async function queryMemory(query, options = {}) {
        const args = withLog({ ...query }, options.logName);
        if (options.offset !== undefined)
            args['offset'] = options.offset;
        if (options.limit !== undefined)
            args['limit'] = options.limit;
        const page = await call('atlas_query', args);
        if (typeof page !== 'object' ||
            page === null ||
            !Array.isArray(page.nodes) ||
            !(page.next === null || typeof page.next === 'number')) {
            throw new HypercoreError('DESERIALIZATION_FAILED', 'atlas_query: expected { nodes, next }');
        }
        return page;
    }
    /**
     * Every page of `query`'s answer, in order, following `next` from `options.offset` (one
     * `atlas_query` call per page): `for await (const nodes of queryMemoryPages(q)) ...`.
     */
    async function* queryMemoryPages(query, options = {}) {
        let offset = options.offset ?? 0;
        for (;;) {
            const page = await queryMemory(query, { ...options, offset });
            yield page.nodes;
            if (page.next === null)
                return;
            if (page.next <= offset) {
                throw new HypercoreError('DESERIALIZATION_FAILED', `atlas_query: next ${page.next} does not advance past ${offset}`);
            }
            offset = page.next;
        }
    }
    /** Every node of `query`'s answer (all pages), in the answer's order. */
    async function queryAllMemory(query, options = {}) {
        const all = [];
        for await (const nodes of queryMemoryPages(query, options))
            all.push(...nodes);
        return all;
    }

    // CRDT collaboration from the page: the spec's `CRDTUpdateEntry`, `crdt_broadcast`,
    // `crdt_subscribe` / `crdt_unsubscribe` (over a Tauri `Channel`), `crdt_follow`, `crdt_info`,
    // and `bindYDoc`, which keeps a Yjs document in sync with every writer the bridge follows.
    //
    // Owns: the CRDT command names, argument shapes and byte encodings (the update as the raw
    // IPC body with its source id percent-encoded in `x-crdt-source-id`; deliveries with the
    // payload in base64, decoded here to a `Uint8Array`).
    // Does not: depend on Yjs at run time (`bindYDoc` takes `Y.applyUpdate` as an option), or
    // connect stores to each other (the app does: the plugin's manager `listen` / `connect`).
    /** The CRDT log the plugin uses when no `logName` is given. */
    const DEFAULT_CRDT_LOG = 'crdt-collab';
    /** The header with a raw `crdt_broadcast`'s source id, percent-encoded (`encodeURIComponent`). */
    const SOURCE_ID_HEADER = 'x-crdt-source-id';
    /** Standard (padded) base64 to bytes. */
    function fromBase64(text) {
        const binary = atob(text);
        const bytes = new Uint8Array(binary.length);
        for (let i = 0; i < binary.length; i++)
            bytes[i] = binary.charCodeAt(i);
        return bytes;
    }
    /** A delivery as the plugin sends it (payload in base64) to a {@link CrdtDelivery}. */
    function decodeDelivery(raw) {
        const m = raw;
        if (typeof m !== 'object' ||
            m === null ||
            typeof m['payload'] !== 'string' ||
            typeof m['sourceId'] !== 'string' ||
            typeof m['writer'] !== 'string' ||
            typeof m['seq'] !== 'number' ||
            typeof m['timestamp'] !== 'number' ||
            typeof m['causalClock'] !== 'object' ||
            m['causalClock'] === null) {
            throw new HypercoreError('DESERIALIZATION_FAILED', `crdt_subscribe: not a CRDT delivery: ${JSON.stringify(raw)}`);
        }
        return {
            sourceId: m['sourceId'],
            timestamp: m['timestamp'],
            causalClock: m['causalClock'],
            payload: fromBase64(m['payload']),
            writer: m['writer'],
            seq: m['seq']
        };
    }
    /**
     * Broadcasts the CRDT update `update` made by replica `sourceId`: appended to this store's
     * CRDT log with a timestamp and vector clock; resolves to its seq. The bytes travel as the
     * raw IPC body.
     */
    async function broadcastCrdtUpdate(update, sourceId, options = {}) {
        const headers = { [SOURCE_ID_HEADER]: encodeURIComponent(sourceId) };
        if (options.logName !== undefined)
            headers[LOG_NAME_HEADER] = options.logName;
        return toCount(await call('crdt_broadcast', update, { headers }), 'crdt_broadcast');
    }
    /**
     * Calls `onUpdate` with every update the bridge delivers (this store's and every followed
     * writer's, each writer's in log order). Resolves to a function that ends the subscription.
     * A delivery that does not decode goes to `onError` (default: `console.error`).
     */
    async function subscribeCrdt(onUpdate, options = {}) {
        const onError = options.onError ?? ((e) => console.error(e));
        const channel = new Channel();
        channel.onmessage = (raw) => {
            let delivery;
            try {
                delivery = decodeDelivery(raw);
            }
            catch (e) {
                onError(HypercoreError.from(e));
                return;
            }
            onUpdate(delivery);
        };
        const args = withLog({ onUpdate: channel }, options.logName);
        if (options.fromStart !== undefined)
            args['fromStart'] = options.fromStart;
        const id = toCount(await call('crdt_subscribe', args), 'crdt_subscribe');
        return async () => {
            await call('crdt_unsubscribe', { id });
        };
    }
    /**
     * Follows another store's writer (its {@link CrdtInfo.writer}) on the CRDT log: its updates
     * are delivered here once the stores are connected. Resolves to the local replica's log name.
     */
    async function followCrdtWriter(publicKey, options = {}) {
        const name = await call('crdt_follow', withLog({ publicKey }, options.logName));
        if (typeof name !== 'string') {
            throw new HypercoreError('DESERIALIZATION_FAILED', 'crdt_follow: expected a log name');
        }
        return name;
    }
    /** This store's writer key, the writers followed and the vector clock of the CRDT log. */
    async function crdtInfo(options = {}) {
        const info = await call('crdt_info', withLog({}, options.logName));
        if (typeof info !== 'object' || info === null || typeof info.writer !== 'string') {
            throw new HypercoreError('DESERIALIZATION_FAILED', 'crdt_info: expected { logName, writer, writers, clock }');
        }
        return info;
    }
    /**
     * Keeps the Yjs document `doc` in sync through the plugin's CRDT bridge: every local update
     * (`doc.on('update')`, except those this binding applied) is broadcast in order, and every
     * delivered update (this store's, other windows', followed writers') is applied with
     * `options.applyUpdate(doc, update, binding.origin)`. Updates the document already has are
     * applied again harmlessly (Yjs ignores them). Bind a fresh document, or one whose existing
     * state the log already holds: content made before binding is not broadcast.
     *
     * ```ts
     * import * as Y from 'yjs'
     * const doc = new Y.Doc()
     * const binding = await bindYDoc(doc, { applyUpdate: Y.applyUpdate })
     * doc.getText('notes').insert(0, 'hello') // broadcast; peers' edits arrive in doc
     * ```
     */
    async function bindYDoc(doc, options) {
        const origin = Object.freeze({ bridge: PLUGIN_NAME });
        const sourceId = options.sourceId ?? String(doc.clientID);
        const onError = options.onError ?? ((e) => console.error(e));
        const log = options.logName === undefined ? {} : { logName: options.logName };
        let bound = true;
        let pending = Promise.resolve();
        const subscription = {
            ...log,
            fromStart: options.fromStart ?? true,
            onError
        };
        const unsubscribe = await subscribeCrdt((delivery) => {
            if (bound)
                options.applyUpdate(doc, delivery.payload, origin);
        }, subscription);
        const onLocal = (update, from) => {
            if (from === origin || !bound)
                return;
            pending = pending.then(() => broadcastCrdtUpdate(update, sourceId, log).then(() => undefined, (e) => onError(HypercoreError.from(e))));
        };
        doc.on('update', onLocal);
        return {
            origin,
            flushed: () => pending,
            unbind: async () => {
                if (!bound)
                    return;
                bound = false;
                doc.off('update', onLocal);
                await pending;
                await unsubscribe();
            }
        };
    }

    // Typed bindings for the nova-hypercore Tauri plugin (runtime name `nova-hypercore`).
    //
    // Owns: the command names (`plugin:nova-hypercore|<command>`), the argument names (camelCase),
    // the byte encodings of `append` (raw body + `x-log-name` header), `read` (raw bytes),
    // `readRange` (u32 big-endian length + bytes per entry, one bounded page per call) and `tail`
    // (u64 big-endian first seq + frames per message), and `HypercoreError`, the one error
    // type every call rejects with (the plugin's `{ code, message, logName?, seq? }` objects and
    // Tauri's own ACL denials, which arrive as strings containing "not allowed").
    //
    // Does not: hold state, retry, or check log names (the plugin and its scope do that).
    /** Bytes from a raw IPC response (ArrayBuffer; typed arrays and number arrays accepted too). */
    function toBytes(value, what) {
        if (value instanceof ArrayBuffer)
            return new Uint8Array(value);
        if (ArrayBuffer.isView(value)) {
            return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
        }
        if (Array.isArray(value) && value.every((b) => Number.isInteger(b) && b >= 0 && b <= 255)) {
            return Uint8Array.from(value);
        }
        throw new HypercoreError('DESERIALIZATION_FAILED', `${what}: expected bytes, got ${typeof value}`);
    }
    /**
     * Appends `data` to the log `logName` (created on first use); resolves to its seq.
     *
     * The bytes travel as the raw IPC body, the log name in the `x-log-name` header (no JSON
     * number array, so a 1 MiB entry is one copy).
     */
    async function append(logName, data) {
        const seq = await call('append', data, { headers: { [LOG_NAME_HEADER]: logName } });
        return toCount(seq, 'append');
    }
    /** The verified bytes of entry `seq` of `logName` (`OUT_OF_RANGE` past its length). */
    async function read(logName, seq) {
        return toBytes(await call('read', { logName, seq }), 'read');
    }
    /**
     * The number of entries in `logName`. A log that does not exist (never appended to, not
     * followed) is `STORAGE_INACCESSIBLE`: reads never create a log.
     */
    async function length(logName) {
        return toCount(await call('length', { logName }), 'length');
    }
    /** Most entries one `read_range` call answers (the plugin's `MAX_RANGE_ENTRIES`). */
    const MAX_RANGE_ENTRIES = 1024;
    /**
     * One page of entries from `start` towards `end` (exclusive) of `logName`: at most
     * {@link MAX_RANGE_ENTRIES} entries and about 8 MiB, at least one entry when `start < end`.
     * The next page starts at `start + entries.length`.
     */
    async function readRangePage(logName, start, end) {
        const bytes = toBytes(await call('read_range', { logName, start, end }), 'readRange');
        return decodeFrames(bytes);
    }
    /**
     * Entries `start` (inclusive) to `end` (exclusive) of `logName`, verified, in order, page
     * by page ({@link readRangePage}): yields each page's entries.
     */
    async function* readRangePages(logName, start, end) {
        let next = start;
        while (next < end) {
            const page = await readRangePage(logName, next, end);
            if (page.length === 0) {
                throw new HypercoreError('DESERIALIZATION_FAILED', `readRange: empty page at ${next}`, {
                    logName
                });
            }
            next += page.length;
            yield page;
        }
    }
    /**
     * Entries `start` (inclusive) to `end` (exclusive) of `logName`, verified, in order (as many
     * calls as it takes: see {@link readRangePage}). The returned arrays are views into the
     * response buffers.
     */
    async function readRange(logName, start, end) {
        if (start >= end)
            return readRangePage(logName, start, end);
        const out = [];
        for await (const page of readRangePages(logName, start, end))
            out.push(...page);
        return out;
    }
    /**
     * Streams `logName` from `fromSeq`: every entry already there, then each new one (appended in
     * this app or replicated from a peer), in order and without gaps, to `onEntry(seq, data)`.
     * The window's scope is checked when it starts; a log that does not exist is
     * `STORAGE_INACCESSIBLE`. A sparse replica fetches the entries from `fromSeq` on (and nothing
     * before). The tail ends with the page (reload or window closed), `stop()`, the log's
     * deletion or the store's close.
     */
    async function tail(logName, fromSeq, onEntry, handlers = {}) {
        const channel = new Channel();
        channel.onmessage = (message) => {
            if (message instanceof ArrayBuffer || ArrayBuffer.isView(message) || Array.isArray(message)) {
                const { first, entries } = decodeTailBatch(toBytes(message, 'tail'));
                entries.forEach((entry, i) => onEntry(first + i, entry));
                return;
            }
            const m = message;
            if (m['event'] === 'truncate') {
                handlers.onTruncate?.({
                    kept: toCount(m['kept'], 'tail kept'),
                    length: toCount(m['length'], 'tail length'),
                    fork: toCount(m['fork'], 'tail fork')
                });
            }
            else if (m['event'] === 'error') {
                handlers.onError?.(HypercoreError.from(m['error']));
            }
            else if (m['event'] === 'end') {
                handlers.onEnd?.(m['reason'] === 'deleted' ? 'deleted' : 'closed');
            }
        };
        const args = { logName, fromSeq, onEntry: channel };
        if (handlers.fork !== undefined)
            args['fork'] = handlers.fork;
        const id = toCount(await call('tail', args), 'tail');
        return {
            id,
            stop: async () => {
                await call('unsubscribe', { id });
            }
        };
    }
    /**
     * Splits one `tail` message: a u64 big-endian seq of the first entry, then frames as
     * {@link decodeFrames}.
     */
    function decodeTailBatch(bytes) {
        if (bytes.byteLength < 8) {
            throw new HypercoreError('DESERIALIZATION_FAILED', `tail: ${bytes.byteLength}-byte message`);
        }
        const first = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, false);
        if (first > BigInt(Number.MAX_SAFE_INTEGER)) {
            throw new HypercoreError('DESERIALIZATION_FAILED', `tail: seq ${first} is not a safe integer`);
        }
        return { first: Number(first), entries: decodeFrames(bytes.subarray(8)) };
    }
    function toObject(value, what) {
        if (typeof value !== 'object' || value === null || Array.isArray(value)) {
            throw new HypercoreError('DESERIALIZATION_FAILED', `${what}: expected an object`);
        }
        return value;
    }
    /**
     * Replicates the log `logName` of this store (created if new) with every peer the plugin
     * connects to; resolves to its keys for the other side's {@link follow}. Needs the
     * `nova-hypercore:allow-share` permission (or the `replicate` set).
     */
    async function share(logName) {
        return toObject(await call('share', { logName }), 'share');
    }
    /** Stops replicating `logName` (it stays in the store). Needs `allow-unshare`. */
    async function unshare(logName) {
        await call('unshare', { logName });
    }
    /**
     * Follows a peer's log by its core key (hex), stored here as `logName`: full (every entry) or
     * `sparse` (only what is read). Needs `allow-follow`.
     */
    async function follow(logName, publicKey, options = {}) {
        const args = { logName, publicKey };
        if (options.sparse !== undefined)
            args['sparse'] = options.sparse;
        return toObject(await call('follow', args), 'follow');
    }
    /** The log's replication: local length, peers' lengths, bytes moved. */
    async function replicationStatus(logName) {
        return toObject(await call('replication_status', { logName }), 'replicationStatus');
    }
    /** How far the log's download is. */
    async function downloadProgress(logName) {
        return toObject(await call('download_progress', { logName }), 'downloadProgress');
    }
    /** The keys of an existing log. */
    async function logKeys(logName) {
        return toObject(await call('log_keys', { logName }), 'logKeys');
    }
    /**
     * Calls `onEvent` with every manager event about a log this window's scope allows
     * (truncations, peers, download progress, health warnings, errors, deleted logs) and the
     * refusals of this window's own calls, over a Tauri `Channel`.
     * Resolves to a function that ends the subscription.
     */
    async function subscribe(onEvent) {
        const channel = new Channel();
        channel.onmessage = onEvent;
        const id = toCount(await call('subscribe', { onEvent: channel }), 'subscribe');
        return async () => {
            await call('unsubscribe', { id });
        };
    }
    /** The store's status, restricted to the logs this window may see. */
    async function status() {
        const value = await call('status', {});
        if (typeof value !== 'object' || value === null || Array.isArray(value)) {
            throw new HypercoreError('DESERIALIZATION_FAILED', 'status: expected an object');
        }
        return value;
    }
    /**
     * Splits `readRange`'s body: each entry is a u32 big-endian length and that many bytes.
     * A truncated frame is `DESERIALIZATION_FAILED`.
     */
    function decodeFrames(bytes) {
        const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
        const entries = [];
        let at = 0;
        while (at < bytes.byteLength) {
            if (bytes.byteLength - at < 4) {
                throw new HypercoreError('DESERIALIZATION_FAILED', `readRange: ${bytes.byteLength - at} trailing bytes where a 4-byte length was expected`);
            }
            const size = view.getUint32(at, false);
            at += 4;
            if (bytes.byteLength - at < size) {
                throw new HypercoreError('DESERIALIZATION_FAILED', `readRange: entry ${entries.length} claims ${size} bytes, ${bytes.byteLength - at} left`);
            }
            entries.push(bytes.subarray(at, at + size));
            at += size;
        }
        return entries;
    }

    exports.DEFAULT_ATLAS_LOG = DEFAULT_ATLAS_LOG;
    exports.DEFAULT_CRDT_LOG = DEFAULT_CRDT_LOG;
    exports.ERROR_CODES = ERROR_CODES;
    exports.HypercoreError = HypercoreError;
    exports.LOG_NAME_HEADER = LOG_NAME_HEADER;
    exports.MAX_MEMORY_PAGE = MAX_MEMORY_PAGE;
    exports.MAX_RANGE_ENTRIES = MAX_RANGE_ENTRIES;
    exports.PLUGIN_NAME = PLUGIN_NAME;
    exports.SOURCE_ID_HEADER = SOURCE_ID_HEADER;
    exports.append = append;
    exports.bindYDoc = bindYDoc;
    exports.broadcastCrdtUpdate = broadcastCrdtUpdate;
    exports.crdtInfo = crdtInfo;
    exports.decodeDelivery = decodeDelivery;
    exports.decodeFrames = decodeFrames;
    exports.decodeTailBatch = decodeTailBatch;
    exports.downloadProgress = downloadProgress;
    exports.follow = follow;
    exports.followCrdtWriter = followCrdtWriter;
    exports.fromBase64 = fromBase64;
    exports.isErrorCode = isErrorCode;
    exports.length = length;
    exports.logKeys = logKeys;
    exports.queryAllMemory = queryAllMemory;
    exports.queryMemory = queryMemory;
    exports.queryMemoryPages = queryMemoryPages;
    exports.read = read;
    exports.readRange = readRange;
    exports.readRangePage = readRangePage;
    exports.readRangePages = readRangePages;
    exports.replicationStatus = replicationStatus;
    exports.share = share;
    exports.status = status;
    exports.storeMemoryNode = storeMemoryNode;
    exports.subscribe = subscribe;
    exports.subscribeCrdt = subscribeCrdt;
    exports.tail = tail;
    exports.unshare = unshare;

    return exports;

})({});
Object.defineProperty(window.__TAURI__, 'novaHypercore', { value: __TAURI_PLUGIN_NOVA_HYPERCORE__ }) }
