// The tab's lasting identity: a key kept in localStorage, so that its history follows it.
// Tabs of one browser each hold a slot of their own (Web Locks), so they never share a key.

const SLOTS = 64;
const PREFIX = 'browsergrid.worker_key.';

function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `tab-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

function keyOfSlot(slot) {
  const name = PREFIX + slot;
  let key = localStorage.getItem(name);
  if (!key) {
    key = newKey();
    localStorage.setItem(name, key);
  }
  return key;
}

// Resolves to this tab's key, or undefined where storage is unavailable (it then works
// without a history). The slot's lock is held for as long as the tab lives.
export async function claimWorkerKey() {
  try {
    if (!navigator.locks) return keyOfSlot(0);
    for (let slot = 0; slot < SLOTS; slot += 1) {
      const taken = await new Promise((resolve) => {
        navigator.locks.request(`${PREFIX}${slot}`, { ifAvailable: true }, (lock) => {
          if (lock === null) {
            resolve(false);
            return undefined;
          }
          resolve(true);
          return new Promise(() => {}); // held until the tab closes
        });
      });
      if (taken) return keyOfSlot(slot);
    }
    return undefined;
  } catch {
    return undefined;
  }
}
