// The real `openai` npm client breaking out of a streamed completion after two chunks, as an app
// does when its user navigates away: the client aborts the request and drops the connection.
// llmsd must notice, stop generating for it, and go on serving. Environment: LLMS_BASE_URL,
// LLMS_API_KEY. Prints how many chunks it read; exits nonzero on any failure.
import OpenAI from 'openai';

const client = new OpenAI({ baseURL: process.env.LLMS_BASE_URL, apiKey: process.env.LLMS_API_KEY });
const stream = await client.completions.create({
  model: 'stories260K', prompt: 'Once upon a time', max_tokens: 1500, temperature: 0, stream: true,
});
let chunks = 0;
for await (const chunk of stream) {
  if (chunk.choices[0]?.text) chunks++;
  if (chunks === 2) break;  // aborts the request
}
console.log(JSON.stringify({ chunks }));
if (chunks !== 2) process.exit(1);
