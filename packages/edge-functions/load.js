// Instantiates one of the package's wasm-bindgen modules, wherever it runs:
// a browser or an edge runtime fetches the .wasm beside the module (its own
// origin, or wherever the page's bundler put it); Node reads it from disk,
// having no fetch for file: URLs; Deno reads it with its own API.
// Nothing else touches the network.

/**
 * @param {(input: { module_or_path: unknown }) => Promise<unknown>} init the module's default export
 * @param {URL} url where its .wasm is
 */
export async function load(init, url) {
  if (url.protocol === "file:") {
    let bytes;
    if (typeof Deno !== "undefined") {
      bytes = await Deno.readFile(url);
    } else {
      const fs = "node:fs/promises";
      const { readFile } = await import(/* webpackIgnore: true */ /* @vite-ignore */ fs);
      bytes = await readFile(url);
    }
    return init({ module_or_path: bytes });
  }
  return init({ module_or_path: url });
}
