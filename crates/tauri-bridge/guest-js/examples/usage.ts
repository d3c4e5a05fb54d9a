import { HypercoreError, append, length, read, readRange } from '@nova26/plugin-nova-hypercore'

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** Appends a note to `e2e-notes` and reads it back (verified against the signed log). */
export async function saveNote(text: string): Promise<string> {
  const seq: number = await append('e2e-notes', encoder.encode(text))
  return decoder.decode(await read('e2e-notes', seq))
}

/** Every note so far, in order, in one IPC call. */
export async function allNotes(): Promise<string[]> {
  const entries = await readRange('e2e-notes', 0, await length('e2e-notes'))
  return entries.map((entry) => decoder.decode(entry))
}

/** False for a log outside this window's capability scope; other errors propagate. */
export async function mayRead(logName: string): Promise<boolean> {
  try {
    await length(logName)
    return true
  } catch (e) {
    if (e instanceof HypercoreError && e.code === 'UNAUTHORIZED') return false
    throw e
  }
}
