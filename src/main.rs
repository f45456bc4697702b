fn main() {
    println!("calltone");
}
