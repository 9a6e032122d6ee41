include(CMakePackageConfigHelpers)

install(TARGETS sessionkit EXPORT sessionkitTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/core/include/sessionkit DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT sessionkitTargets NAMESPACE sessionkit::
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/sessionkit)

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/sessionkitConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/sessionkitConfig.cmake
                              INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/sessionkit)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/sessionkitConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/sessionkitConfig.cmake ${PROJECT_BINARY_DIR}/sessionkitConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/sessionkit)

set(SESSIONKIT_PC_REQUIRES "openssl nlohmann_json")
if(SESSIONKIT_WITH_LMDB)
  string(APPEND SESSIONKIT_PC_REQUIRES " lmdb")
endif()
if(SESSIONKIT_WITH_REDIS)
  string(APPEND SESSIONKIT_PC_REQUIRES " hiredis")
endif()
# Relocatable: the prefix is found from the .pc file's own directory, so an
# install with `cmake --install --prefix DIR` works wherever DIR is.
file(RELATIVE_PATH SESSIONKIT_PC_TO_PREFIX ${CMAKE_INSTALL_FULL_LIBDIR}/pkgconfig ${CMAKE_INSTALL_PREFIX})
configure_file(${PROJECT_SOURCE_DIR}/cmake/sessionkit.pc.in ${PROJECT_BINARY_DIR}/sessionkit.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/sessionkit.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
