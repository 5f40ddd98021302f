// A real HDFS (NameNode + 1 DataNode, Hadoop's MiniDFSCluster) on 127.0.0.1 for tests/cluster/test_hdfs.py.
// java -cp .:hadoop-client-minicluster.jar:<pyspark jars> MiniHdfs BASEDIR NAMENODE_PORT; prints READY <uri>.
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.hdfs.MiniDFSCluster;

public class MiniHdfs {
  public static void main(String[] args) throws Exception {
    Configuration conf = new Configuration();
    conf.set(MiniDFSCluster.HDFS_MINIDFS_BASEDIR, args[0]);
    conf.set("dfs.namenode.http-address", "127.0.0.1:0");
    conf.set("dfs.datanode.address", "127.0.0.1:0");
    conf.set("dfs.datanode.http.address", "127.0.0.1:0");
    conf.set("dfs.datanode.ipc.address", "127.0.0.1:0");
    MiniDFSCluster cluster = new MiniDFSCluster.Builder(conf).nameNodePort(Integer.parseInt(args[1]))
        .numDataNodes(1).build();
    cluster.waitActive();
    System.out.println("READY " + cluster.getURI());
    System.out.flush();
    Thread.sleep(Long.MAX_VALUE);
  }
}
