#include "foresight/allocate/backend.h"
namespace foresight::allocate {
std::unique_ptr<Backend> makeKubernetesBackend(const BackendOptions&) { return nullptr; }
}
