// Test-rig launcher: mongo-java-server with a file-backed H2 (MVStore) store on a loopback port.
// Usage: java -cp CP MysyncMongoServer --port N (0 = any free) --data FILE [--host 127.0.0.1]
// Prints "READY <port>" on stdout once listening (nothing else goes to stdout; warnings go to
// stderr). SIGTERM/SIGINT shut it down and close the store (commits pending writes).
import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.backend.h2.H2Backend;
import java.io.File;

public final class MysyncMongoServer {
    private static void usage(String msg) {
        System.err.println("MysyncMongoServer: " + msg);
        System.err.println("usage: MysyncMongoServer --port N --data FILE [--host ADDR]");
        System.exit(2);
    }

    public static void main(String[] args) {
        // Before any logger exists: warnings and errors only, to stderr (-D overrides).
        if (System.getProperty("org.slf4j.simpleLogger.defaultLogLevel") == null) {
            System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn");
        }
        System.setProperty("org.slf4j.simpleLogger.logFile", "System.err");
        System.setProperty("org.slf4j.simpleLogger.showDateTime", "true");

        String host = "127.0.0.1";
        String data = null;
        int port = 0;
        for (int i = 0; i < args.length; i += 2) {
            if (i + 1 >= args.length) usage("missing value for " + args[i]);
            String v = args[i + 1];
            switch (args[i]) {
                case "--port":
                    try {
                        port = Integer.parseInt(v);
                    } catch (NumberFormatException e) {
                        port = -1;
                    }
                    if (port < 0 || port > 65535) usage("bad port " + v);
                    break;
                case "--data": data = v; break;
                case "--host": host = v; break;
                default: usage("unknown argument " + args[i]);
            }
        }
        if (data == null) usage("--data FILE is required");

        File parent = new File(data).getAbsoluteFile().getParentFile();
        if (parent != null) parent.mkdirs();

        H2Backend backend = null;
        MongoServer server = null;
        try {
            backend = new H2Backend(data); // fails if another process holds the file
            server = new MongoServer(backend);
            server.bind(host, port); // netty rethrows BindException unchecked
        } catch (Exception e) {
            System.err.println("MysyncMongoServer: cannot start on " + host + ":" + port
                    + " with " + data + ": " + e);
            stop(server, backend); // netty threads would otherwise keep the JVM alive
            System.exit(1);
        }
        final MongoServer srv = server;
        final H2Backend be = backend;
        Runtime.getRuntime().addShutdownHook(new Thread(() -> stop(srv, be), "shutdown"));
        System.out.println("READY " + server.getLocalAddress().getPort());
        System.out.flush();
    }

    // shutdownNow() closes the clients, the listener and the backend; close() again is a
    // no-op then, but still commits and closes the MVStore if the server part failed.
    private static void stop(MongoServer server, H2Backend backend) {
        try {
            if (server != null) server.shutdownNow();
        } catch (Exception e) {
            System.err.println("MysyncMongoServer: shutdown: " + e);
        } finally {
            try {
                if (backend != null) backend.close();
            } catch (Exception e) {
                System.err.println("MysyncMongoServer: closing store: " + e);
            }
        }
    }
}
