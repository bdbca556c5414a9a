// SHA-256 of a file (FIPS 180-4), so the binary can check a program against
// the sha256 its model card records (shared/model_card.py: ModelCard.check_program)
// without linking a crypto library.
#pragma once
#include <string>

namespace earshot {

// Lowercase hex digest of the file at `path`. Throws std::runtime_error if it cannot be read.
std::string file_sha256(const std::string& path);

}  // namespace earshot
