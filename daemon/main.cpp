#include <cstdio>
#include "daemon/version.hpp"
int main() { std::printf("eddyd %s\n", eddy::daemon::version().data()); return 0; }
