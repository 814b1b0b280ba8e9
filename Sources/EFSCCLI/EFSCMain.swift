public enum EFSCMain { public static func main() async {} }
