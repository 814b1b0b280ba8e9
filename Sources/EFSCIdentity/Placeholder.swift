import EFSCCore
