// Test-rig launcher: mongo-java-server with a file-backed H2 store on a loopback port.
// Usage: java -cp CP MysyncMongoServer --port N (0 = any free) --data FILE [--host 127.0.0.1]
// Prints "READY <port>" once listening; SIGTERM/SIGINT shut it down and close the store.
import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.backend.h2.H2Backend;
import java.io.File;
import java.net.InetSocketAddress;

public final class MysyncMongoServer {
    public static void main(String[] args) {
        String host = "127.0.0.1";
        String data = null;
        int port = 0;
        for (int i = 0; i + 1 < args.length; i += 2) {
            switch (args[i]) {
                case "--port": port = Integer.parseInt(args[i + 1]); break;
                case "--data": data = args[i + 1]; break;
                case "--host": host = args[i + 1]; break;
                default:
                    System.err.println("unknown argument " + args[i]);
                    System.exit(2);
            }
        }
        if (data == null) {
            System.err.println("--data FILE is required");
            System.exit(2);
        }
        File parent = new File(data).getAbsoluteFile().getParentFile();
        if (parent != null) {
            parent.mkdirs();
        }
        H2Backend backend = new H2Backend(data);
        MongoServer server = new MongoServer(backend);
        server.bind(host, port);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            server.shutdownNow();
            backend.close(); // commits and closes the MVStore file
        }));
        InetSocketAddress addr = server.getLocalAddress();
        System.out.println("READY " + addr.getPort());
        System.out.flush();
    }
}
