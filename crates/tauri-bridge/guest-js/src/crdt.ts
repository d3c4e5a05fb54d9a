// CRDT collaboration from the page: the spec's `CRDTUpdateEntry`, `crdt_broadcast`,
// `crdt_subscribe` / `crdt_unsubscribe` (over a Tauri `Channel`), `crdt_follow`, `crdt_info`,
// and `bindYDoc`, which keeps a Yjs document in sync with every writer the bridge follows.
//
// Owns: the CRDT command names, argument shapes and byte encodings (the update as the raw
// IPC body with its source id percent-encoded in `x-crdt-source-id`; deliveries with the
// payload in base64, decoded here to a `Uint8Array`).
// Does not: depend on Yjs at run time (`bindYDoc` takes `Y.applyUpdate` as an option), or
// connect stores to each other (the app does: the plugin's manager `listen` / `connect`).

import { Channel } from '@tauri-apps/api/core'

import { HypercoreError, LOG_NAME_HEADER, PLUGIN_NAME } from './error.js'
import { call, toCount, withLog } from './ipc.js'

/** The CRDT log the plugin uses when no `logName` is given. */
export const DEFAULT_CRDT_LOG = 'crdt-collab'

/** The header with a raw `crdt_broadcast`'s source id, percent-encoded (`encodeURIComponent`). */
export const SOURCE_ID_HEADER = 'x-crdt-source-id'

/** A CRDT update with its vector clock: the spec's `CRDTUpdateEntry`. */
export interface CRDTUpdateEntry {
  /** The replica that made the update (a clock key). */
  sourceId: string
  /** Milliseconds since the Unix epoch, when it was broadcast. */
  timestamp: number
  /** Vector clock: replica id to counter. */
  causalClock: Record<string, number>
  /** The opaque CRDT update (a Yjs update, for example). */
  payload: Uint8Array
}

/** A delivered update: the entry and where it is stored. */
export interface CrdtDelivery extends CRDTUpdateEntry {
  /** The writer's public key (64 lowercase hex): this store's or a followed one's. */
  writer: string
  /** The entry's seq in that writer's log. */
  seq: number
}

/** A writer in {@link CrdtInfo}. */
export interface CrdtWriter {
  /** Its public key (64 lowercase hex). */
  writer: string
  /** The local log holding its updates. */
  logName: string
  /** Entries `0..delivered` of it were delivered. */
  delivered: number
}

/** What {@link crdtInfo} resolves to. */
export interface CrdtInfo {
  logName: string
  /** This store's writer key for the log: what other stores pass to {@link followCrdtWriter}. */
  writer: string
  /** Every writer whose updates are delivered, this store's included. */
  writers: CrdtWriter[]
  /** The vector clock the next broadcast builds on. */
  clock: Record<string, number>
}

/** Which CRDT log (default `crdt-collab`). */
export interface CrdtLogOptions {
  logName?: string
}

/** Options of {@link subscribeCrdt}. */
export interface SubscribeCrdtOptions extends CrdtLogOptions {
  /**
   * Also deliver every update delivered before this subscription (first, in each writer's
   * log order); some may then arrive twice, which a CRDT ignores. Default false.
   */
  fromStart?: boolean
}




/** Standard (padded) base64 to bytes. */
export function fromBase64(text: string): Uint8Array {
  const binary = atob(text)
  const bytes = new Uint8Array(binary.length)
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i)
  return bytes
}

/** A delivery as the plugin sends it (payload in base64) to a {@link CrdtDelivery}. */
export function decodeDelivery(raw: unknown): CrdtDelivery {
  const m = raw as Record<string, unknown> | null
  if (
    typeof m !== 'object' ||
    m === null ||
    typeof m['payload'] !== 'string' ||
    typeof m['sourceId'] !== 'string' ||
    typeof m['writer'] !== 'string' ||
    typeof m['seq'] !== 'number' ||
    typeof m['timestamp'] !== 'number' ||
    typeof m['causalClock'] !== 'object' ||
    m['causalClock'] === null
  ) {
    throw new HypercoreError('DESERIALIZATION_FAILED', `crdt_subscribe: not a CRDT delivery: ${JSON.stringify(raw)}`)
  }
  return {
    sourceId: m['sourceId'],
    timestamp: m['timestamp'],
    causalClock: m['causalClock'] as Record<string, number>,
    payload: fromBase64(m['payload']),
    writer: m['writer'],
    seq: m['seq']
  }
}

/**
 * Broadcasts the CRDT update `update` made by replica `sourceId`: appended to this store's
 * CRDT log with a timestamp and vector clock; resolves to its seq. The bytes travel as the
 * raw IPC body.
 */
export async function broadcastCrdtUpdate(
  update: Uint8Array,
  sourceId: string,
  options: CrdtLogOptions = {}
): Promise<number> {
  const headers: Record<string, string> = { [SOURCE_ID_HEADER]: encodeURIComponent(sourceId) }
  if (options.logName !== undefined) headers[LOG_NAME_HEADER] = options.logName
  return toCount(await call<unknown>('crdt_broadcast', update, { headers }), 'crdt_broadcast')
}

/**
 * Calls `onUpdate` with every update the bridge delivers (this store's and every followed
 * writer's, each writer's in log order). Resolves to a function that ends the subscription.
 * A delivery that does not decode goes to `onError` (default: `console.error`).
 */
export async function subscribeCrdt(
  onUpdate: (delivery: CrdtDelivery) => void,
  options: SubscribeCrdtOptions & { onError?: (error: HypercoreError) => void } = {}
): Promise<() => Promise<void>> {
  const onError = options.onError ?? ((e: HypercoreError) => console.error(e))
  const channel = new Channel<unknown>()
  channel.onmessage = (raw) => {
    let delivery: CrdtDelivery
    try {
      delivery = decodeDelivery(raw)
    } catch (e) {
      onError(HypercoreError.from(e))
      return
    }
    onUpdate(delivery)
  }
  const args = withLog({ onUpdate: channel }, options.logName)
  if (options.fromStart !== undefined) args['fromStart'] = options.fromStart
  const id = toCount(await call<unknown>('crdt_subscribe', args), 'crdt_subscribe')
  return async () => {
    await call<unknown>('crdt_unsubscribe', { id })
  }
}

/**
 * Follows another store's writer (its {@link CrdtInfo.writer}) on the CRDT log: its updates
 * are delivered here once the stores are connected. Resolves to the local replica's log name.
 */
export async function followCrdtWriter(publicKey: string, options: CrdtLogOptions = {}): Promise<string> {
  const name = await call<unknown>('crdt_follow', withLog({ publicKey }, options.logName))
  if (typeof name !== 'string') {
    throw new HypercoreError('DESERIALIZATION_FAILED', 'crdt_follow: expected a log name')
  }
  return name
}

/** This store's writer key, the writers followed and the vector clock of the CRDT log. */
export async function crdtInfo(options: CrdtLogOptions = {}): Promise<CrdtInfo> {
  const info = await call<unknown>('crdt_info', withLog({}, options.logName))
  if (typeof info !== 'object' || info === null || typeof (info as CrdtInfo).writer !== 'string') {
    throw new HypercoreError('DESERIALIZATION_FAILED', 'crdt_info: expected { logName, writer, writers, clock }')
  }
  return info as CrdtInfo
}

/** The part of a Yjs `Y.Doc` that {@link bindYDoc} uses. */
export interface YDocLike {
  readonly clientID: number
  on(event: 'update', handler: (update: Uint8Array, origin: unknown) => void): void
  off(event: 'update', handler: (update: Uint8Array, origin: unknown) => void): void
}

/** Options of {@link bindYDoc}. */
export interface BindYDocOptions<D extends YDocLike> extends CrdtLogOptions {
  /** `Y.applyUpdate` (this package does not import Yjs). */
  applyUpdate: (doc: D, update: Uint8Array, origin?: unknown) => void
  /** The source id of this document's broadcasts (default: `String(doc.clientID)`). */
  sourceId?: string
  /** Apply every update delivered before binding too (default true: a fresh document gets the whole state). */
  fromStart?: boolean
  /** Failed broadcasts and undecodable deliveries (default: `console.error`). */
  onError?: (error: HypercoreError) => void
}

/** A bound document; see {@link bindYDoc}. */
export interface YDocBinding {
  /** The origin remote updates are applied with (`doc.on('update', (u, origin) => ...)` sees it). */
  readonly origin: object
  /** Resolves when every local update so far has been broadcast (or failed to `onError`). */
  flushed(): Promise<void>
  /** Stops broadcasting and applying; resolves when the subscription has ended. */
  unbind(): Promise<void>
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
export async function bindYDoc<D extends YDocLike>(doc: D, options: BindYDocOptions<D>): Promise<YDocBinding> {
  const origin = Object.freeze({ bridge: PLUGIN_NAME })
  const sourceId = options.sourceId ?? String(doc.clientID)
  const onError = options.onError ?? ((e: HypercoreError) => console.error(e))
  const log: CrdtLogOptions = options.logName === undefined ? {} : { logName: options.logName }
  let bound = true
  let pending: Promise<void> = Promise.resolve()

  const subscription: SubscribeCrdtOptions & { onError: (error: HypercoreError) => void } = {
    ...log,
    fromStart: options.fromStart ?? true,
    onError
  }
  const unsubscribe = await subscribeCrdt((delivery) => {
    if (bound) options.applyUpdate(doc, delivery.payload, origin)
  }, subscription)

  const onLocal = (update: Uint8Array, from: unknown): void => {
    if (from === origin || !bound) return
    pending = pending.then(
      () =>
        broadcastCrdtUpdate(update, sourceId, log).then(
          () => undefined,
          (e: unknown) => onError(HypercoreError.from(e))
        )
    )
  }
  doc.on('update', onLocal)

  return {
    origin,
    flushed: () => pending,
    unbind: async () => {
      if (!bound) return
      bound = false
      doc.off('update', onLocal)
      await pending
      await unsubscribe()
    }
  }
}
