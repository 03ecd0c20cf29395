// Two chat turns through the real `openai` npm client against llmsd: the first non-streamed, the
// second streamed, resending the whole conversation as stateless clients do. Prints one JSON line
// with what it saw; exits nonzero on any failure. Environment: LLMS_BASE_URL (http://host:port/v1),
// LLMS_API_KEY.
import OpenAI from 'openai';

const client = new OpenAI({ baseURL: process.env.LLMS_BASE_URL, apiKey: process.env.LLMS_API_KEY });

const messages = [{ role: 'user', content: 'Tell me a story about a cat.' }];
const first = await client.chat.completions.create({
  model: 'stories260K', messages, max_tokens: 24, temperature: 0,
});
const reply = first.choices[0].message.content;
messages.push({ role: 'assistant', content: reply });
messages.push({ role: 'user', content: 'What happened next?' });

const { data: stream, response } = await client.chat.completions
  .create({
    model: 'stories260K', messages, max_tokens: 16, temperature: 0, stream: true,
    stream_options: { include_usage: true },
  })
  .withResponse();
let streamed = '';
let chunks = 0;
let usage = null;
let finish = null;
for await (const chunk of stream) {
  if (chunk.usage) usage = chunk.usage;
  const choice = chunk.choices[0];
  if (!choice) continue;
  if (choice.delta?.content) { streamed += choice.delta.content; chunks++; }
  if (choice.finish_reason) finish = choice.finish_reason;
}
const models = await client.models.list();

console.log(JSON.stringify({
  first_text: reply,
  first_context: first.llms?.context ?? null,
  first_usage: first.usage,
  first_finish: first.choices[0].finish_reason,
  second_context: Number(response.headers.get('x-llms-context')),
  second_text: streamed,
  second_chunks: chunks,
  second_usage: usage,
  second_finish: finish,
  models: models.data.map((m) => m.id),
}));
