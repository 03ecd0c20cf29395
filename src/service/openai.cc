#include "service/openai.h"

#include <algorithm>
#include <ctime>

namespace llms::openai {
namespace {

// A message's content: a string, or an array of parts of which the text ones count.
StatusOr<std::string> ContentText(const Json& message, size_t index) {
  const std::string where = "messages[" + std::to_string(index) + "].content";
  auto it = message.find("content");
  if (it == message.end() || it->is_null()) return std::string();
  if (it->is_string()) return it->get<std::string>();
  if (!it->is_array()) return Status::InvalidArgument(where + ": expected a string or an array");
  std::string text;
  for (const Json& part : *it) {
    if (!part.is_object() || wire::StringOr(part, "type", "") != "text" || !part.contains("text") ||
        !part["text"].is_string()) {
      return Status::InvalidArgument(where + ": only text parts are supported");
    }
    text += part["text"].get<std::string>();
  }
  return text;
}

std::string FinishReason(const std::string& stop_reason) {
  return stop_reason == "length" ? "length" : "stop";
}

std::string PlainRole(const std::string& role) {
  if (role == "system" || role == "developer") return "System";
  if (role == "assistant") return "Assistant";
  return "User";
}

}  // namespace

StatusOr<Request> ParseRequest(Endpoint endpoint, const std::string& body) {
  StatusOr<Json> parsed = wire::ParseJson(body);
  if (!parsed.ok()) return parsed.status().WithContext("request body");
  Json m = std::move(parsed).value();
  if (!m.is_object()) return Status::InvalidArgument("request body is not a JSON object");
  Request r;
  r.endpoint = endpoint;
  LLMS_ASSIGN_OR_RETURN(uint64_t max_tokens, wire::GetUint(m, "max_tokens", r.max_tokens));
  LLMS_ASSIGN_OR_RETURN(r.max_tokens, wire::GetUint(m, "max_completion_tokens", max_tokens));
  LLMS_ASSIGN_OR_RETURN(r.temperature, wire::GetNumber(m, "temperature", r.temperature));
  LLMS_ASSIGN_OR_RETURN(r.top_p, wire::GetNumber(m, "top_p", r.top_p));
  LLMS_ASSIGN_OR_RETURN(r.seed, wire::GetUint(m, "seed", r.seed));
  LLMS_ASSIGN_OR_RETURN(r.stream, wire::GetBool(m, "stream", false));
  LLMS_ASSIGN_OR_RETURN(r.context, wire::GetUint(m, "context", 0));
  if (m.contains("stream_options") && m["stream_options"].is_object()) {
    LLMS_ASSIGN_OR_RETURN(r.include_usage,
                          wire::GetBool(m["stream_options"], "include_usage", false));
  }
  if (m.contains("n") && m["n"] != 1) {
    return Status::InvalidArgument("field 'n': only 1 choice per request is supported");
  }
  if (m.contains("stop") && !m["stop"].is_null()) {
    const Json& stop = m["stop"];
    if (stop.is_string()) {
      r.stop.push_back(stop.get<std::string>());
    } else if (stop.is_array() && stop.size() <= 4) {
      for (const Json& s : stop) {
        if (!s.is_string()) return Status::InvalidArgument("field 'stop': expected strings");
        r.stop.push_back(s.get<std::string>());
      }
    } else {
      return Status::InvalidArgument("field 'stop': expected a string or up to 4 strings");
    }
    r.stop.erase(std::remove(r.stop.begin(), r.stop.end(), ""), r.stop.end());
  }
  if (endpoint == Endpoint::kCompletion) {
    if (m.contains("prompt") && m["prompt"].is_array() && m["prompt"].size() == 1 &&
        m["prompt"][0].is_string()) {
      r.text = m["prompt"][0].get<std::string>();
    } else {
      LLMS_ASSIGN_OR_RETURN(r.text, wire::GetString(m, "prompt"));
    }
    return r;
  }
  auto messages = m.find("messages");
  if (messages == m.end() || !messages->is_array() || messages->empty()) {
    return Status::InvalidArgument("field 'messages': expected a non-empty array");
  }
  r.text = "";  // rendered by the caller, who knows the model's template
  return r;
}

StatusOr<std::string> RenderChat(const Json& messages, const std::string& chat_template,
                                 std::vector<std::string>* stop) {
  const bool chatml = chat_template.find("<|im_start|>") != std::string::npos;
  std::string text;
  for (size_t i = 0; i < messages.size(); ++i) {
    const Json& msg = messages[i];
    if (!msg.is_object()) {
      return Status::InvalidArgument("messages[" + std::to_string(i) + "]: expected an object");
    }
    LLMS_ASSIGN_OR_RETURN(std::string role, wire::GetString(msg, "role"));
    LLMS_ASSIGN_OR_RETURN(std::string content, ContentText(msg, i));
    if (chatml) {
      text += "<|im_start|>" + role + "\n" + content + "<|im_end|>\n";
      continue;
    }
    const std::string name = PlainRole(role);
    // One space after the colon, whether or not the content brings its own (as our replies do).
    const bool spaced = !content.empty() && content.front() == ' ';
    text += name + ":" + (spaced || content.empty() ? "" : " ") + content +
            (name == "System" ? "\n\n" : "\n");
  }
  if (chatml) {
    text += "<|im_start|>assistant\n";
    stop->push_back("<|im_end|>");
  } else {
    text += "Assistant:";
    stop->push_back("\nUser:");
  }
  return text;
}

StatusOr<Placement> Place(KvManager* manager, const Tokenizer& tokenizer, const std::string& app,
                          const std::string& request_text, uint64_t context,
                          const std::function<bool(uint64_t)>& busy) {
  const std::vector<int32_t> full = tokenizer.Encode(request_text, true);
  const std::string wanted = tokenizer.Decode(full);
  auto rest_of = [&](const std::string& have) {
    std::string rest = wanted.substr(have.size());
    return tokenizer.Encode(rest, false, /*continuation=*/true);
  };
  Placement p;
  if (context != 0) {
    LLMS_ASSIGN_OR_RETURN(std::vector<int32_t> have, manager->ContextTokens(app, context));
    const std::string text = tokenizer.Decode(have);
    p.context = context;
    p.reused_tokens = have.size();
    if (!have.empty() && wanted.compare(0, text.size(), text) == 0) {
      p.prompt = rest_of(text);
    } else {
      p.prompt = have.empty() ? full : tokenizer.Encode(request_text, false, true);
    }
    return p;
  }
  size_t best = 0;
  for (const ContextInfo& info : manager->ListContexts(app)) {
    if (!info.damage.empty() || busy(info.id)) continue;
    StatusOr<std::vector<int32_t>> have = manager->ContextTokens(app, info.id);
    if (!have.ok() || have->empty()) continue;
    const std::string text = tokenizer.Decode(*have);
    if (text.size() > best && text.size() <= wanted.size() &&
        wanted.compare(0, text.size(), text) == 0) {
      best = text.size();
      p.context = info.id;
      p.reused_tokens = have->size();
    }
  }
  if (p.context == 0) {
    p.prompt = full;
    return p;
  }
  p.prompt = rest_of(wanted.substr(0, best));
  return p;
}

Json Usage(const Json& usage) {
  const size_t cached = usage.value("cached_tokens", size_t{0});
  const size_t prompt = usage.value("prompt_tokens", size_t{0}) + cached;
  const size_t completion = usage.value("completion_tokens", size_t{0});
  return Json{{"prompt_tokens", prompt},
              {"completion_tokens", completion},
              {"total_tokens", prompt + completion},
              {"prompt_tokens_details", {{"cached_tokens", cached}}}};
}

Json Completion(const Request& r, const std::string& model, const std::string& id,
                const std::string& text, const std::string& stop_reason, const Json& usage) {
  Json choice{{"index", 0}, {"finish_reason", FinishReason(stop_reason)}, {"logprobs", nullptr}};
  if (r.endpoint == Endpoint::kChat) {
    choice["message"] = Json{{"role", "assistant"}, {"content", text}};
  } else {
    choice["text"] = text;
  }
  return Json{{"id", id},
              {"object", r.endpoint == Endpoint::kChat ? "chat.completion" : "text_completion"},
              {"created", static_cast<int64_t>(std::time(nullptr))},
              {"model", model},
              {"choices", Json::array({choice})},
              {"usage", Usage(usage)}};
}

Json Chunk(const Request& r, const std::string& model, const std::string& id,
           const std::string& text, const char* finish_reason) {
  Json choice{{"index", 0}, {"logprobs", nullptr}};
  choice["finish_reason"] = finish_reason != nullptr ? Json(finish_reason) : Json(nullptr);
  if (r.endpoint == Endpoint::kChat) {
    choice["delta"] =
        finish_reason != nullptr ? Json::object() : Json{{"role", "assistant"}, {"content", text}};
  } else {
    choice["text"] = text;
  }
  return Json{
      {"id", id},
      {"object", r.endpoint == Endpoint::kChat ? "chat.completion.chunk" : "text_completion"},
      {"created", static_cast<int64_t>(std::time(nullptr))},
      {"model", model},
      {"choices", Json::array({choice})}};
}

Json Models(const std::string& model) {
  return Json{
      {"object", "list"},
      {"data", Json::array({Json{
                   {"id", model}, {"object", "model"}, {"created", 0}, {"owned_by", "llms"}}})}};
}

Json Error(const Status& status) {
  const char* type = status.code() == StatusCode::kInvalidArgument ? "invalid_request_error"
                     : status.code() == StatusCode::kNotFound      ? "not_found_error"
                                                                   : "server_error";
  return Json{{"error",
               {{"message", status.message()},
                {"type", type},
                {"param", nullptr},
                {"code", wire::ErrorMessage(0, status).value("code", "unknown")}}}};
}

}  // namespace llms::openai
