# The part both toolchain files share; they set EDDY_CROSS_TRIPLET, EDDY_CROSS_QEMU and
# CMAKE_SYSTEM_PROCESSOR first, then include multiarch.cmake (aarch64: the target's
# libraries beside the host's, from dpkg's multiarch) or sysroot.cmake (armhf: a private
# sysroot made by cross/sysroot).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_C_COMPILER ${EDDY_CROSS_TRIPLET}-gcc)
set(CMAKE_CXX_COMPILER ${EDDY_CROSS_TRIPLET}-g++)
set(CMAKE_LIBRARY_ARCHITECTURE ${EDDY_CROSS_TRIPLET})
