import { HypercoreError, append, length, read, readRange, tail } from '@nova26/plugin-nova-hypercore'

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** Appends a note to `e2e-notes` and reads it back (verified against the signed log). */
export async function saveNote(text: string): Promise<string> {
  const seq: number = await append('e2e-notes', encoder.encode(text))
  return decoder.decode(await read('e2e-notes', seq))
}

/** Every note so far, in order (as many calls as it takes: one page is at most 1,024). */
export async function allNotes(): Promise<string[]> {
  const entries = await readRange('e2e-notes', 0, await length('e2e-notes'))
  return entries.map((entry) => decoder.decode(entry))
}

/**
 * Shows every note live: those so far, then each new one as it is written here or
 * replicated from a peer, in order and without gaps. Resolves to the function that stops it.
 */
export async function showNotes(show: (seq: number, text: string) => void): Promise<() => Promise<void>> {
  const live = await tail('e2e-notes', 0, (seq, data) => show(seq, decoder.decode(data)))
  return live.stop
}

/** False for a log outside this window's capability scope; other errors propagate. */
export async function mayRead(logName: string): Promise<boolean> {
  try {
    await length(logName)
    return true
  } catch (e) {
    if (e instanceof HypercoreError && e.code === 'UNAUTHORIZED') return false
    // In scope, but no such log yet: reads never create one.
    if (e instanceof HypercoreError && e.code === 'STORAGE_INACCESSIBLE') return true
    throw e
  }
}
