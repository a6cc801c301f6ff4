// Reading a newline-delimited JSON stream (a fetch response body) line by line as it arrives.

// Calls onLine(text) for every non-empty line of `body` (a ReadableStream of bytes); resolves at its end.
export async function readLines(body, onLine) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let pending = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    const lines = (pending + decoder.decode(value, { stream: true })).split('\n');
    pending = lines.pop();
    for (const line of lines) if (line.trim()) onLine(line);
  }
  pending += decoder.decode();
  if (pending.trim()) onLine(pending);
}
