import { onDestroy, onMount } from 'svelte';

/**
 * Loads something now and every `ms` while the page is shown (sources have no push event: their agents'
 * online state is read this way). Call from a component's script.
 */
export function poll<T>(load: () => Promise<T>, ms: number): { readonly value: T | null; readonly error: unknown; reload: () => Promise<void> } {
  let value = $state<T | null>(null);
  let error = $state<unknown>(null);
  let timer: ReturnType<typeof setInterval> | undefined;
  const reload = async (): Promise<void> => {
    try {
      value = await load();
      error = null;
    } catch (err) {
      error = err;
    }
  };
  onMount(() => {
    void reload();
    timer = setInterval(() => void reload(), ms);
  });
  onDestroy(() => clearInterval(timer));
  return {
    get value() {
      return value;
    },
    get error() {
      return error;
    },
    reload,
  };
}
