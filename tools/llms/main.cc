// llms: the command line. Subcommands are added by later modules.
#include <cstdio>

int main() {
  std::puts("llms: not yet");
  return 0;
}
