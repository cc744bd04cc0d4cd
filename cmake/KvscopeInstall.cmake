# `cmake --install`: headers, libkvscope.a, the `kvscope` tool, a CMake
# package (find_package(kvscope CONFIG) -> kvscope::kvscope) and kvscope.pc.
include_guard(GLOBAL)
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(KVSCOPE_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/kvscope)

# The header-only dependencies travel with the package as interface targets
# (include path and the Asio configuration macros every user must share).
set_target_properties(kvscope_asio PROPERTIES EXPORT_NAME asio)
set_target_properties(kvscope_concurrentqueue PROPERTIES EXPORT_NAME concurrentqueue)

install(TARGETS kvscope kvscope_asio kvscope_concurrentqueue
  EXPORT kvscopeTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/kvscope DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS kvscope_tool RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(EXPORT kvscopeTargets NAMESPACE kvscope:: DESTINATION ${KVSCOPE_CMAKE_DIR})

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/kvscopeConfig.cmake.in
  ${PROJECT_BINARY_DIR}/kvscopeConfig.cmake INSTALL_DESTINATION ${KVSCOPE_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/kvscopeConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/kvscopeConfig.cmake ${PROJECT_BINARY_DIR}/kvscopeConfigVersion.cmake
  DESTINATION ${KVSCOPE_CMAKE_DIR})

file(RELATIVE_PATH KVSCOPE_PC_TO_PREFIX "/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/")
string(REGEX REPLACE "/$" "" KVSCOPE_PC_TO_PREFIX "${KVSCOPE_PC_TO_PREFIX}")
configure_file(${PROJECT_SOURCE_DIR}/cmake/kvscope.pc.in ${PROJECT_BINARY_DIR}/kvscope.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/kvscope.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
