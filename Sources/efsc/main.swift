import EFSCCLI
await EFSCMain.main()
