/**
 * Where unsent events wait across reloads: IndexedDB, else localStorage, else memory. Each event
 * is one record, owned by the page (tab) that recorded it; only its owner sends it, and another
 * page adopts it once the owner is gone (see `tabs.ts`), so two open tabs never both send it.
 */

import type { TrackedEvent } from "./types.js";

/** One unsent event and its sending state. */
export interface QueuedEvent {
  /** The event's `event_id`. */
  id: string;
  event: TrackedEvent;
  /** Its size as JSON, in UTF-8 bytes. */
  bytes: number;
  /** The page that sends it. */
  owner: string;
  /** When it was recorded (ms since the epoch), and its order among events of the same ms. */
  at: number;
  seq: number;
  /** Retryable answers it has had. */
  attempts: number;
  /** Not to be sent before this time (ms since the epoch): the backoff after a failure. */
  notBefore: number;
}

/** The durable copy of a page's queue. Writes may fail (quota): the page's memory still sends. */
export interface QueueStore {
  /** Adds or replaces these records. */
  put(records: QueuedEvent[]): Promise<void>;
  /** Deletes these records (sent, or given up on). */
  remove(ids: string[]): Promise<void>;
  /** Makes `owner` the owner of every record of another owner that `orphaned` says is gone, in
   * one step no other page can interleave with; returns those records. */
  adopt(owner: string, orphaned: (record: QueuedEvent) => boolean): Promise<QueuedEvent[]>;
}

/** A store that lasts as long as the page: a backend's, or where the browser allows no other. */
export class MemoryStore implements QueueStore {
  readonly records = new Map<string, QueuedEvent>();

  async put(records: QueuedEvent[]): Promise<void> {
    for (const record of records) this.records.set(record.id, structuredClone(record));
  }

  async remove(ids: string[]): Promise<void> {
    for (const id of ids) this.records.delete(id);
  }

  async adopt(owner: string, orphaned: (record: QueuedEvent) => boolean): Promise<QueuedEvent[]> {
    const adopted = [];
    for (const record of this.records.values()) {
      if (record.owner !== owner && orphaned(record)) {
        record.owner = owner;
        adopted.push(structuredClone(record));
      }
    }
    return adopted;
  }
}

const OBJECT_STORE = "events";

/** Opens (creating it on first use) the IndexedDB database `name`. */
export function openIndexedDb(factory: IDBFactory, name: string): Promise<QueueStore> {
  return new Promise((resolve, reject) => {
    const request = factory.open(name, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(OBJECT_STORE, { keyPath: "id" });
    request.onsuccess = () => {
      const db = request.result;
      // A newer version of the page wants to upgrade the database: let it.
      db.onversionchange = () => db.close();
      resolve(new IndexedDbStore(db));
    };
    request.onerror = () => reject(request.error);
  });
}

/** The queue in IndexedDB. Its read-write transactions run one at a time across the origin's
 * pages, which makes `adopt` atomic. */
class IndexedDbStore implements QueueStore {
  constructor(private readonly db: IDBDatabase) {}

  private transaction<T>(work: (store: IDBObjectStore) => T): Promise<T> {
    return new Promise((resolve, reject) => {
      const tx = this.db.transaction(OBJECT_STORE, "readwrite");
      const result = work(tx.objectStore(OBJECT_STORE));
      tx.oncomplete = () => resolve(result);
      tx.onerror = tx.onabort = () => reject(tx.error);
    });
  }

  put(records: QueuedEvent[]): Promise<void> {
    return this.transaction((store) => {
      for (const record of records) store.put(record);
    });
  }

  remove(ids: string[]): Promise<void> {
    return this.transaction((store) => {
      for (const id of ids) store.delete(id);
    });
  }

  adopt(owner: string, orphaned: (record: QueuedEvent) => boolean): Promise<QueuedEvent[]> {
    return this.transaction((store) => {
      const adopted: QueuedEvent[] = [];
      const all = store.getAll();
      all.onsuccess = () => {
        for (const record of all.result as QueuedEvent[]) {
          if (record.owner !== owner && orphaned(record)) {
            record.owner = owner;
            store.put(record);
            adopted.push(record);
          }
        }
      };
      return adopted;
    });
  }
}

/** The queue in localStorage, one key per event. Adoption holds a Web Lock where the browser
 * has them; localStorage alone cannot make it atomic across pages. */
export class LocalStorageStore implements QueueStore {
  private readonly prefix: string;

  constructor(
    private readonly storage: Storage,
    name: string,
    private readonly locks?: LockManager,
  ) {
    this.prefix = `${name}:`;
  }

  async put(records: QueuedEvent[]): Promise<void> {
    for (const record of records) this.storage.setItem(this.prefix + record.id, JSON.stringify(record));
  }

  async remove(ids: string[]): Promise<void> {
    for (const id of ids) this.storage.removeItem(this.prefix + id);
  }

  adopt(owner: string, orphaned: (record: QueuedEvent) => boolean): Promise<QueuedEvent[]> {
    const work = (): QueuedEvent[] => {
      const adopted = [];
      for (let i = 0; i < this.storage.length; i++) {
        const key = this.storage.key(i);
        if (key === null || !key.startsWith(this.prefix)) continue;
        let record: QueuedEvent;
        try {
          record = JSON.parse(this.storage.getItem(key) ?? "");
        } catch {
          continue;
        }
        if (record.owner !== owner && orphaned(record)) {
          record.owner = owner;
          this.storage.setItem(key, JSON.stringify(record));
          adopted.push(record);
        }
      }
      return adopted;
    };
    return this.locks ? this.locks.request(`${this.prefix}adopt`, work) : Promise.resolve(work());
  }
}

/** What `openStore` may use; each is absent where the runtime lacks it. */
export interface StorageEnv {
  indexedDB?: IDBFactory;
  localStorage?: Storage;
  locks?: LockManager;
}

/**
 * The store of kind `kind` (`auto`: the first of IndexedDB, localStorage and memory that works
 * here; private windows and old browsers refuse some). A store that cannot be opened gives way to
 * the next, down to memory, so tracking never stops on storage.
 */
export async function openStore(kind: string, name: string, env: StorageEnv): Promise<QueueStore> {
  if ((kind === "auto" || kind === "indexeddb") && env.indexedDB) {
    try {
      return await openIndexedDb(env.indexedDB, name);
    } catch {
      // Refused (a private window, a blocked origin): try the next.
    }
  }
  if ((kind === "auto" || kind === "indexeddb" || kind === "localstorage") && env.localStorage) {
    try {
      const probe = `${name}:probe`;
      env.localStorage.setItem(probe, "1");
      env.localStorage.removeItem(probe);
      return new LocalStorageStore(env.localStorage, name, env.locks);
    } catch {
      // Disabled or full: memory it is.
    }
  }
  return new MemoryStore();
}
