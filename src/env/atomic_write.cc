// WriteFileAtomically: temp file, sync, rename, directory sync (STYLE rule 18), shared by every
// writer of a whole file (GGUF files, traces).
#include "env/env.h"

namespace llms {

Status WriteFileAtomically(Env* env, const std::string& path,
                           const std::function<Status(WritableFile*)>& write) {
  const std::string tmp = path + ".tmp";
  LLMS_ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> file, env->NewWritableFile(tmp));
  Status s = write(file.get());
  if (s.ok()) s = file->Sync();
  if (s.ok()) s = file->Close();
  if (s.ok()) s = env->RenameFile(tmp, path);
  if (!s.ok()) {
    (void)file->Close();  // may already be closed; the first error is the one to report
    (void)env->RemoveFile(tmp);
    return s;
  }
  // The rename is durable only once the directory is synced. An Env without directories (the
  // default implementation answers Unavailable) has nothing to sync.
  const size_t slash = path.find_last_of('/');
  s = env->SyncDir(slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash));
  return s.code() == StatusCode::kUnavailable ? Status::Ok() : s;
}

Status WriteFileAtomically(Env* env, const std::string& path, std::string_view bytes) {
  return WriteFileAtomically(env, path, [bytes](WritableFile* file) {
    return file->Append({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
  });
}

}  // namespace llms
