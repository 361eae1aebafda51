// eddy: the command line. Everything happens in cli/daemon_commands.cpp.
#include "cli/daemon_commands.hpp"

int main(int argc, char** argv) { return eddy::cli::run(argc, argv); }
